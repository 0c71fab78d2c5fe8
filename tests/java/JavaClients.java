// Apache Kafka's Java clients (kafka-clients 4.4.0) against a broker's
// Kafka listener: spool's, or Apache Kafka's own for comparison. Each
// scenario checks what it reads against what it wrote and exits non-zero
// with the first difference. Run by tests/java_clients.rs:
//
//   java -cp CLASSPATH JavaClients SCENARIO BOOTSTRAP
//
// Scenarios: records, transactions, groups, admin. Names are prefixed
// with a run id so that a scenario can run twice against one broker.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class JavaClients {
    static String bootstrap;
    static String run;
    static final Duration PATIENCE = Duration.ofSeconds(60);

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            throw new IllegalArgumentException("usage: JavaClients SCENARIO BOOTSTRAP");
        }
        bootstrap = args[1];
        run = Long.toString(System.currentTimeMillis() % 1_000_000_000L);
        switch (args[0]) {
            case "records" -> records();
            case "transactions" -> transactions();
            case "groups" -> groups();
            case "admin" -> admin();
            default -> throw new IllegalArgumentException("unknown scenario " + args[0]);
        }
        System.out.println("ok " + args[0]);
    }

    static void check(boolean holds, String what) {
        if (!holds) {
            throw new AssertionError(what);
        }
    }

    // ----------------------------------------------------------------
    // Clients

    static Admin adminClient() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    static KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.putAll(extra);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        p.putAll(extra);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static void createTopic(Admin admin, String topic, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
    }

    /** Polls until `count` records arrived (more is a failure later). */
    static List<ConsumerRecord<String, String>> pollFor(
            KafkaConsumer<String, String> consumer, int count) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        while (got.size() < count) {
            check(System.nanoTime() < deadline, "only " + got.size() + " of " + count + " records");
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                got.add(r);
            }
        }
        // Anything more that is there arrives within a few polls.
        for (int i = 0; i < 5; i++) {
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                got.add(r);
            }
        }
        return got;
    }

    static List<TopicPartition> partitions(String topic, int count) {
        List<TopicPartition> all = new ArrayList<>();
        for (int p = 0; p < count; p++) {
            all.add(new TopicPartition(topic, p));
        }
        return all;
    }

    // ----------------------------------------------------------------
    // records: every record read back as it was written

    record Sent(String key, String value, long timestamp, List<Header> headers) {}

    static void records() throws Exception {
        String topic = "java-records-" + run;
        int partitions = 3;
        try (Admin admin = adminClient()) {
            createTopic(admin, topic, partitions);
        }
        Map<TopicPartition, Map<Long, Sent>> sent = new HashMap<>();
        long base = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<String, String> producer = producer(Map.of())) {
            for (int i = 0; i < 300; i++) {
                int partition = i % partitions;
                String key = i % 50 == 7 ? null : "key-" + i;
                String value = i % 50 == 9 ? null : "value-" + i + "-" + "x".repeat(i % 17);
                List<Header> headers = new ArrayList<>();
                headers.add(new RecordHeader("n", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                if (i % 3 == 0) {
                    headers.add(new RecordHeader("empty", (byte[]) null));
                }
                long timestamp = base + i;
                ProducerRecord<String, String> record =
                        new ProducerRecord<>(topic, partition, timestamp, key, value, headers);
                RecordMetadata m = producer.send(record).get();
                TopicPartition tp = new TopicPartition(topic, partition);
                long expected = sent.computeIfAbsent(tp, t -> new TreeMap<>()).size();
                check(m.partition() == partition, "partition of record " + i);
                check(m.offset() == expected, "record " + i + " at offset " + m.offset() + ", expected " + expected);
                check(m.timestamp() == timestamp, "timestamp of record " + i + ": " + m.timestamp());
                sent.get(tp).put(m.offset(), new Sent(key, value, timestamp, headers));
            }
        }
        // Assigned: every record, in order per partition.
        try (KafkaConsumer<String, String> consumer = consumer(Map.of())) {
            consumer.assign(partitions(topic, partitions));
            consumer.seekToBeginning(partitions(topic, partitions));
            checkAll(pollFor(consumer, 300), sent);
        }
        // A group member reads them too, commits, and the commit is seen.
        String group = "java-records-" + run;
        try (KafkaConsumer<String, String> consumer =
                consumer(Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
            consumer.subscribe(List.of(topic));
            checkAll(pollFor(consumer, 300), sent);
            consumer.commitSync();
        }
        try (Admin admin = adminClient()) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            for (TopicPartition tp : partitions(topic, partitions)) {
                check(committed.containsKey(tp), "no committed offset for " + tp);
                check(committed.get(tp).offset() == 100, tp + " committed at " + committed.get(tp).offset());
            }
        }
    }

    static void checkAll(List<ConsumerRecord<String, String>> got, Map<TopicPartition, Map<Long, Sent>> sent) {
        check(got.size() == 300, "read " + got.size() + " records, wrote 300");
        Map<TopicPartition, Long> next = new HashMap<>();
        for (ConsumerRecord<String, String> r : got) {
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            long expected = next.getOrDefault(tp, 0L);
            check(r.offset() == expected, tp + ": offset " + r.offset() + " after " + (expected - 1));
            next.put(tp, expected + 1);
            Sent s = sent.get(tp).get(r.offset());
            String at = tp + "@" + r.offset();
            check(java.util.Objects.equals(r.key(), s.key()), at + " key " + r.key() + " != " + s.key());
            check(java.util.Objects.equals(r.value(), s.value()), at + " value " + r.value());
            check(r.timestamp() == s.timestamp(), at + " timestamp " + r.timestamp());
            check(r.timestampType() == TimestampType.CREATE_TIME, at + " " + r.timestampType());
            Header[] headers = r.headers().toArray();
            check(headers.length == s.headers().size(), at + " has " + headers.length + " headers");
            for (int h = 0; h < headers.length; h++) {
                Header want = s.headers().get(h);
                check(headers[h].key().equals(want.key()), at + " header " + h + " key " + headers[h].key());
                check(Arrays.equals(headers[h].value(), want.value()), at + " header " + h + " value");
            }
        }
    }

    // ----------------------------------------------------------------
    // transactions: atomic visibility, read_committed, offsets in a
    // transaction, zombie fencing

    static void transactions() throws Exception {
        String input = "java-txn-in-" + run;
        String output = "java-txn-out-" + run;
        try (Admin admin = adminClient()) {
            createTopic(admin, input, 2);
            createTopic(admin, output, 1);
        }
        Map<String, Object> txn = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-" + run);
        try (KafkaProducer<String, String> producer = producer(txn)) {
            producer.initTransactions();
            sendInTransaction(producer, input, "committed-a", 10, true);
            sendInTransaction(producer, input, "aborted", 5, false);
            sendInTransaction(producer, input, "committed-b", 10, true);
        }
        try (KafkaConsumer<String, String> committed = consumer(
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            committed.assign(partitions(input, 2));
            committed.seekToBeginning(partitions(input, 2));
            List<ConsumerRecord<String, String>> got = pollFor(committed, 20);
            check(got.size() == 20, "read_committed read " + got.size() + " of 20");
            for (ConsumerRecord<String, String> r : got) {
                check(r.value().startsWith("committed"), "read_committed saw " + r.value());
            }
        }
        try (KafkaConsumer<String, String> all = consumer(
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted"))) {
            all.assign(partitions(input, 2));
            all.seekToBeginning(partitions(input, 2));
            check(pollFor(all, 25).size() == 25, "read_uncommitted did not read all 25");
        }
        consumeTransformProduce(input, output);
        fencing();
    }

    static void sendInTransaction(
            KafkaProducer<String, String> producer, String topic, String prefix, int count, boolean commit)
            throws Exception {
        producer.beginTransaction();
        for (int i = 0; i < count; i++) {
            producer.send(new ProducerRecord<>(topic, i % 2, "k" + i, prefix + "-" + i));
        }
        if (commit) {
            producer.commitTransaction();
        } else {
            producer.flush();
            producer.abortTransaction();
        }
    }

    /** Reads the input with a group, writes each value upper-cased and
     *  commits the group's offsets inside the same transaction. */
    static void consumeTransformProduce(String input, String output) throws Exception {
        String group = "java-ctp-" + run;
        Map<String, Object> txn = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-ctp-" + run);
        try (KafkaConsumer<String, String> consumer = consumer(Map.of(
                        ConsumerConfig.GROUP_ID_CONFIG, group,
                        ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"));
                KafkaProducer<String, String> producer = producer(txn)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            int moved = 0;
            long deadline = System.nanoTime() + PATIENCE.toNanos();
            while (moved < 20) {
                check(System.nanoTime() < deadline, "moved only " + moved + " of 20");
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.key(), r.value().toUpperCase()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    moved++;
                }
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                producer.commitTransaction();
            }
            check(moved == 20, "moved " + moved + " records, expected 20");
        }
        try (KafkaConsumer<String, String> check = consumer(
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            check.assign(partitions(output, 1));
            check.seekToBeginning(partitions(output, 1));
            List<ConsumerRecord<String, String>> out = pollFor(check, 20);
            check(out.size() == 20, "output holds " + out.size() + " records");
            for (ConsumerRecord<String, String> r : out) {
                check(r.value().startsWith("COMMITTED"), "output holds " + r.value());
            }
        }
        try (Admin admin = adminClient()) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> ends = new HashMap<>();
            try (KafkaConsumer<String, String> c = consumer(
                    Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                ends.putAll(c.endOffsets(partitions(input, 2)));
            }
            for (TopicPartition tp : partitions(input, 2)) {
                check(committed.containsKey(tp), "no offset committed for " + tp);
                // The offset after the last record read: at most the end,
                // which the commit marker after it also occupies.
                long offset = committed.get(tp).offset();
                check(offset >= ends.get(tp) - 1 && offset <= ends.get(tp),
                        tp + " committed at " + offset + ", end " + ends.get(tp));
            }
        }
    }

    /** A second producer with the same transactional id fences the first. */
    static void fencing() throws Exception {
        String topic = "java-fence-" + run;
        try (Admin admin = adminClient()) {
            createTopic(admin, topic, 1);
        }
        Map<String, Object> txn = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-fence-" + run);
        KafkaProducer<String, String> zombie = producer(txn);
        zombie.initTransactions();
        zombie.beginTransaction();
        zombie.send(new ProducerRecord<>(topic, "zombie")).get();
        try (KafkaProducer<String, String> successor = producer(txn)) {
            successor.initTransactions();
            boolean fenced = false;
            try {
                zombie.send(new ProducerRecord<>(topic, "late")).get();
                zombie.commitTransaction();
            } catch (ProducerFencedException e) {
                fenced = true;
            } catch (java.util.concurrent.ExecutionException e) {
                fenced = e.getCause() instanceof ProducerFencedException
                        || e.getCause() instanceof org.apache.kafka.common.errors.InvalidProducerEpochException;
            } catch (org.apache.kafka.common.KafkaException e) {
                fenced = true;
            }
            check(fenced, "the zombie was not fenced");
            successor.beginTransaction();
            successor.send(new ProducerRecord<>(topic, "successor")).get();
            successor.commitTransaction();
        } finally {
            zombie.close(Duration.ofSeconds(5));
        }
        try (KafkaConsumer<String, String> c = consumer(
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(partitions(topic, 1));
            c.seekToBeginning(partitions(topic, 1));
            List<ConsumerRecord<String, String>> got = pollFor(c, 1);
            check(got.size() == 1 && got.get(0).value().equals("successor"),
                    "read_committed after fencing: " + got.stream().map(ConsumerRecord::value).toList());
        }
    }

    // ----------------------------------------------------------------
    // groups: cooperative-sticky rebalancing, static membership

    static void groups() throws Exception {
        String topic = "java-groups-" + run;
        int partitions = 6;
        try (Admin admin = adminClient()) {
            createTopic(admin, topic, partitions);
        }
        try (KafkaProducer<String, String> producer = producer(Map.of())) {
            for (int i = 0; i < 60; i++) {
                producer.send(new ProducerRecord<>(topic, i % partitions, "k" + i, "v" + i));
            }
        }
        cooperative(topic, partitions);
        staticMembership(topic, partitions);
    }

    static void cooperative(String topic, int partitions) throws Exception {
        Map<String, Object> config = Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, "java-coop-" + run,
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        List<KafkaConsumer<String, String>> members = new ArrayList<>();
        for (int m = 0; m < 3; m++) {
            members.add(consumer(config));
            members.get(m).subscribe(List.of(topic));
        }
        Set<String> values = new HashSet<>();
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        // One thread polls them in turn: each rebalance completes as the
        // members come back to poll, as in any single-threaded program.
        while (true) {
            check(System.nanoTime() < deadline, "no even assignment: " + assignments(members));
            for (KafkaConsumer<String, String> member : members) {
                for (ConsumerRecord<String, String> r : member.poll(Duration.ofMillis(100))) {
                    values.add(r.value());
                }
            }
            if (values.size() == 60 && evenlyAssigned(members, partitions)) {
                break;
            }
        }
        for (KafkaConsumer<String, String> member : members) {
            member.close();
        }
    }

    static boolean evenlyAssigned(List<KafkaConsumer<String, String>> members, int partitions) {
        Set<TopicPartition> union = new HashSet<>();
        int total = 0;
        for (KafkaConsumer<String, String> member : members) {
            Set<TopicPartition> mine = member.assignment();
            if (mine.size() != partitions / members.size()) {
                return false;
            }
            union.addAll(mine);
            total += mine.size();
        }
        return union.size() == partitions && total == partitions;
    }

    static String assignments(List<KafkaConsumer<String, String>> members) {
        List<String> all = new ArrayList<>();
        for (KafkaConsumer<String, String> member : members) {
            all.add(member.assignment().toString());
        }
        return all.toString();
    }

    /** A static member that goes away and comes back within its session
     *  timeout keeps its partitions without a rebalance. */
    static void staticMembership(String topic, int partitions) throws Exception {
        String group = "java-static-" + run;
        Map<String, Object> config = Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-1",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        Set<TopicPartition> before;
        try (KafkaConsumer<String, String> first = consumer(config)) {
            first.subscribe(List.of(topic));
            pollFor(first, 60);
            before = first.assignment();
            check(before.size() == partitions, "the lone static member has " + before);
            first.commitSync();
        }
        try (KafkaConsumer<String, String> again = consumer(config)) {
            again.subscribe(List.of(topic));
            long deadline = System.nanoTime() + PATIENCE.toNanos();
            while (again.assignment().isEmpty()) {
                check(System.nanoTime() < deadline, "the static member got no assignment back");
                check(again.poll(Duration.ofMillis(200)).isEmpty(), "records read again after the commit");
            }
            check(again.assignment().equals(before), "assignment changed: " + again.assignment());
            try (Admin admin = adminClient()) {
                ConsumerGroupDescription d =
                        admin.describeConsumerGroups(List.of(group)).all().get().get(group);
                check(d.members().size() == 1, "members: " + d.members());
                String instance = d.members().iterator().next().groupInstanceId().orElse("");
                check(instance.equals("instance-1"), "group instance id " + instance);
            }
        }
    }

    // ----------------------------------------------------------------
    // admin: topics, configs, partitions, groups

    static void alter(Admin admin, ConfigResource resource, AlterConfigOp op) throws Exception {
        admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
    }

    static void admin() throws Exception {
        String topic = "java-admin-" + run;
        try (Admin admin = adminClient()) {
            NewTopic newTopic = new NewTopic(topic, 2, (short) 1)
                    .configs(Map.of("retention.ms", "3600000", "cleanup.policy", "compact",
                            "compression.type", "producer"));
            admin.createTopics(List.of(newTopic)).all().get();
            check(admin.listTopics().names().get().contains(topic), "the new topic is not listed");
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(d.partitions().size() == 2, "partitions: " + d.partitions().size());
            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            check("3600000".equals(config.get("retention.ms").value()), "retention.ms " + config.get("retention.ms"));
            check("compact".equals(config.get("cleanup.policy").value()), "cleanup.policy " + config.get("cleanup.policy"));
            check(config.get("retention.ms").source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms source " + config.get("retention.ms").source());
            // kafka-configs --alter --add-config / --delete-config
            alter(admin, resource, new AlterConfigOp(new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET));
            config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            check("1000".equals(config.get("retention.ms").value()), "after SET: " + config.get("retention.ms"));
            alter(admin, resource, new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE));
            config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            check("604800000".equals(config.get("retention.ms").value()), "after DELETE: " + config.get("retention.ms"));
            check(config.get("retention.ms").source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                    "retention.ms source after DELETE " + config.get("retention.ms").source());
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all().get();
            d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(d.partitions().size() == 4, "after growing: " + d.partitions().size());

            String group = "java-admin-" + run;
            try (KafkaConsumer<String, String> c = consumer(Map.of(ConsumerConfig.GROUP_ID_CONFIG, group))) {
                c.subscribe(List.of(topic));
                c.poll(Duration.ofSeconds(2));
                c.commitSync(Map.of(new TopicPartition(topic, 1), new OffsetAndMetadata(0, "meta")));
            }
            Collection<String> groups = new ArrayList<>();
            admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get().forEach(g -> groups.add(g.groupId()));
            check(groups.contains(group), "groups listed: " + groups);
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            check(g.groupState() == GroupState.EMPTY, "state after the member left: " + g.groupState());
            OffsetAndMetadata committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get().get(new TopicPartition(topic, 1));
            check(committed != null && committed.offset() == 0 && "meta".equals(committed.metadata()),
                    "committed: " + committed);

            // kafka-consumer-groups --delete-offsets, then --delete.
            TopicPartition committedPartition = new TopicPartition(topic, 1);
            admin.deleteConsumerGroupOffsets(group, Set.of(committedPartition)).all().get();
            check(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                    .get(committedPartition) == null, "the deleted offset is still committed");
            admin.deleteConsumerGroups(List.of(group)).all().get();
            Collection<String> left = new ArrayList<>();
            admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get().forEach(l -> left.add(l.groupId()));
            check(!left.contains(group), "the deleted group is still listed: " + left);

            recordsAndTransactionsAdmin(admin);

            admin.deleteTopics(List.of(topic)).all().get();
            long deadline = System.nanoTime() + PATIENCE.toNanos();
            while (admin.listTopics().names().get().contains(topic)) {
                check(System.nanoTime() < deadline, "the deleted topic is still listed");
                Thread.sleep(100);
            }
        }
    }

    /**
     * A topic placed by explicit replica assignments (kafka-topics
     * --replica-assignment), records deleted before an offset
     * (kafka-delete-records), and a committed transaction as
     * kafka-transactions lists and describes it.
     */
    static void recordsAndTransactionsAdmin(Admin admin) throws Exception {
        String topic = "java-deletion-" + run;
        int broker = admin.describeCluster().nodes().get().iterator().next().id();
        admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(broker))))).all().get();
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        check(d.partitions().size() == 1 && d.partitions().get(0).replicas().get(0).id() == broker,
                "placed: " + d);
        String transactionalId = "java-admin-txn-" + run;
        try (KafkaProducer<String, String> p = producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i));
            }
            p.commitTransaction();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4)))
                .lowWatermarks().get(tp).get().lowWatermark();
        check(low == 4, "low watermark after deleting records: " + low);
        long earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all().get().get(tp).offset();
        check(earliest == 4, "earliest offset after deleting records: " + earliest);
        try (KafkaConsumer<String, String> c = consumer(Map.of())) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            ConsumerRecords<String, String> got = c.poll(Duration.ofSeconds(5));
            check(!got.isEmpty() && got.iterator().next().offset() == 4,
                    "first record read after deleting: " + (got.isEmpty() ? "none" : got.iterator().next().offset()));
        }

        Collection<String> listed = new ArrayList<>();
        admin.listTransactions().all().get().forEach(t -> listed.add(t.transactionalId()));
        check(listed.contains(transactionalId), "transactions listed: " + listed);
        TransactionDescription t = admin.describeTransactions(List.of(transactionalId))
                .description(transactionalId).get();
        check(t.state() == TransactionState.COMPLETE_COMMIT, "transaction state: " + t.state());
        admin.deleteTopics(List.of(topic)).all().get();
    }
}
