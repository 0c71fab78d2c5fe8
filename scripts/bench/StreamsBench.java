// Apache Kafka Streams (4.4.0) throughput against a broker's Kafka
// listener: spool's, or Apache Kafka's own. The Java half of
// scripts/bench-streams.sh; `spool bench streams` (src/cli/bench_streams.rs
// and src/cli/bench_streams_clients.rs) is the spool-streams half and runs
// the same cases on the same input with the same end condition, so the two
// can be put side by side. The cases are those of Kafka's own streams
// benchmark (its SimpleBenchmark): two client baselines without a streams
// runtime, then three Kafka Streams applications.
//
//   java -cp CLASSPATH:CLASSES StreamsBench --bootstrap HOST:PORT
//       --case consume|consume-produce|passthrough|store|count --records N
//       --guarantee at_least_once|exactly_once_v2 --app-id ID --state-dir DIR
//       [--partitions P (2)] [--keys K (10000)]
//
// 1. Creates `<ID>-in` and `<ID>-out` (P partitions, replication 1) unless
//    they exist.
// 2. Fills `<ID>-in` with N records, not timed: key "key-" + (i % K),
//    a 100-byte ASCII value; acks=all, linger.ms 5, batch.size 64 KiB,
//    waiting for every acknowledgement.
// 3. Runs the case. The consumers of `<ID>-in` below (byte[] deserializers,
//    auto commit off, auto.offset.reset earliest, isolation.level
//    read_committed under exactly_once_v2 and read_uncommitted under
//    at_least_once) are assigned every partition of `<ID>-in`.
//    - consume: no Kafka Streams; a consumer of `<ID>-in` reads until it
//      has seen N records.
//    - consume-produce: no Kafka Streams; on a thread of its own, a
//      consumer of `<ID>-in` and a KafkaProducer copy every record (key,
//      value and timestamp) to the partition of `<ID>-out` with the number
//      of its input partition. Under exactly_once_v2 the producer is
//      transactional (transactional.id `<ID>-copy`, initTransactions
//      timed): a transaction every 100 ms carries the copies and the
//      consumer's positions (sendOffsetsToTransaction, group `<ID>`), the
//      last one committed once all N are copied. Under at_least_once a
//      plain producer (Kafka's defaults), flushed at the end.
//    - passthrough, store, count: a Kafka Streams application (one stream
//      thread, the record cache off as spool-streams has none, Kafka
//      Streams' defaults otherwise, so commit.interval.ms is 100 ms under
//      exactly_once_v2 and 30 s under at_least_once):
//      - passthrough: each value upper-cased and written to `<ID>-out`;
//      - store: a processor (the Processor API) puts each record into the
//        RocksDB store "latest" (String keys and values, with its
//        changelog topic, no caching) and forwards it unchanged to
//        `<ID>-out`;
//      - count: groupByKey().count() into the RocksDB store "counts" (with
//        its changelog topic), every count written to
//        `<ID>-out` (String key, Long value).
// 4. The clock runs
//    - consume: from just before the first poll (the consumer is created
//      and assigned before) until it has seen N records;
//    - the others: from just before the copier's thread starts, or
//      streams.start(), until a read_committed consumer assigned to every
//      partition of `<ID>-out` (created and assigned before) has seen the
//      whole input processed: N records (consume-produce, passthrough,
//      store), or the latest counts of all keys adding up to N (count).
//      Closing the application (30 s at most), or the copier's finishing
//      (closing its clients) and its thread's join, is not timed.
//
// Prints exactly one line to standard output:
//   RESULT impl=kafka-streams case=C guarantee=G records=N seconds=S.SSS records_per_s=R
// and progress to standard error. Exits non-zero on any failure (the
// copier's too), or when the input (consume) or the output (the others)
// is not complete within 600 s.
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

public final class StreamsBench {
    /** How long the output may take to show the whole input processed. */
    static final Duration PATIENCE = Duration.ofSeconds(600);
    static final int VALUE_SIZE = 100;
    static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss");
    /** consume-produce's transaction length: Kafka Streams' commit interval under exactly_once_v2. */
    static final Duration TRANSACTION_INTERVAL = Duration.ofMillis(100);
    static final List<String> CASES = List.of("consume", "consume-produce", "passthrough", "store", "count");

    // The arguments.
    static String bootstrap;
    static String benchCase;
    static long records = -1;
    static String guarantee;
    static String appId;
    static String stateDir;
    static int partitions = 2;
    static long keys = 10_000;

    public static void main(String[] args) {
        try {
            parseArgs(args);
        } catch (IllegalArgumentException e) {
            System.err.println("StreamsBench: " + e.getMessage());
            System.err.println("usage: StreamsBench --bootstrap HOST:PORT"
                    + " --case consume|consume-produce|passthrough|store|count"
                    + " --records N --guarantee at_least_once|exactly_once_v2 --app-id ID"
                    + " --state-dir DIR [--partitions P] [--keys K]");
            System.exit(2);
        }
        try {
            run();
        } catch (Throwable e) {
            e.printStackTrace();
            // Exit even if some client thread outlived its close.
            System.exit(1);
        }
        System.exit(0);
    }

    static void parseArgs(String[] args) {
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(args[i] + " needs a value");
            }
            String value = args[i + 1];
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = value;
                case "--case" -> benchCase = value;
                case "--records" -> records = Long.parseLong(value);
                case "--guarantee" -> guarantee = value;
                case "--app-id" -> appId = value;
                case "--state-dir" -> stateDir = value;
                case "--partitions" -> partitions = Integer.parseInt(value);
                case "--keys" -> keys = Long.parseLong(value);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null || benchCase == null || records < 0 || guarantee == null
                || appId == null || stateDir == null) {
            throw new IllegalArgumentException(
                    "--bootstrap, --case, --records, --guarantee, --app-id and --state-dir are required");
        }
        if (!CASES.contains(benchCase)) {
            throw new IllegalArgumentException(
                    "--case is consume, consume-produce, passthrough, store or count, not " + benchCase);
        }
        // Kafka Streams' own names, which `spool bench streams` accepts too.
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            throw new IllegalArgumentException(
                    "--guarantee is at_least_once or exactly_once_v2, not " + guarantee);
        }
        if (records < 1 || partitions < 1 || keys < 1) {
            throw new IllegalArgumentException("--records, --partitions and --keys must be positive");
        }
    }

    static String input() {
        return appId + "-in";
    }

    static String output() {
        return appId + "-out";
    }

    static void log(String what) {
        System.err.printf(Locale.ROOT, "[StreamsBench %s] %s%n", LocalTime.now().format(CLOCK), what);
    }

    static boolean exactlyOnce() {
        return guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2);
    }

    static void run() throws Exception {
        Partitions topics = createTopics();
        fill();
        double seconds = switch (benchCase) {
            case "consume" -> consume(topics.input());
            case "consume-produce" -> consumeProduce(topics);
            default -> streams(topics.output());
        };
        System.out.printf(Locale.ROOT,
                "RESULT impl=kafka-streams case=%s guarantee=%s records=%d seconds=%.3f records_per_s=%d%n",
                benchCase, guarantee, records, seconds, (long) (records / seconds));
        System.out.flush();
    }

    static List<TopicPartition> partitionsOf(String topic, int count) {
        List<TopicPartition> all = new ArrayList<>();
        for (int p = 0; p < count; p++) {
            all.add(new TopicPartition(topic, p));
        }
        return all;
    }

    /** consume: reads the input until N records; returns the seconds taken. */
    static double consume(int inputPartitions) {
        // Created and assigned before the clock starts, like the output
        // consumer of the other cases.
        try (KafkaConsumer<byte[], byte[]> consumer = inputConsumer(inputPartitions)) {
            long start = System.nanoTime();
            long deadline = start + PATIENCE.toNanos();
            long nextReport = start + Duration.ofSeconds(5).toNanos();
            long seen = 0;
            while (seen < records) {
                long now = System.nanoTime();
                if (now > deadline) {
                    throw new IllegalStateException("read " + seen + " of " + records + " input records after "
                            + PATIENCE.toSeconds() + " s");
                }
                if (now > nextReport) {
                    log(String.format(Locale.ROOT, "%.1f s: %d of %d input records read",
                            (now - start) / 1e9, seen, records));
                    nextReport = now + Duration.ofSeconds(5).toNanos();
                }
                seen += consumer.poll(Duration.ofMillis(100)).count();
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            log("done: " + seen + " input records read in " + String.format(Locale.ROOT, "%.3f", seconds) + " s");
            return seconds;
        }
    }

    /**
     * consume-produce: copies the input to the output on a thread of its
     * own until the output shows N records; returns the seconds taken.
     */
    static double consumeProduce(Partitions topics) throws Exception {
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicBoolean stop = new AtomicBoolean();
        Thread copier = new Thread(() -> {
            try {
                copy(topics.input(), stop);
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
            }
        }, "copier");
        copier.setDaemon(true);
        Writer writer = new Writer() {
            @Override
            public void check(long progress) {
                if (failure.get() != null) {
                    throw new IllegalStateException("the copy failed at " + progress + " of " + records
                            + " records", failure.get());
                }
            }

            @Override
            public String state() {
                return copier.isAlive() ? "copying" : "copier done";
            }
        };
        // The consumer exists and is assigned before the clock starts;
        // connecting it is the measurement's, not the copy's, cost.
        try (KafkaConsumer<byte[], byte[]> consumer = outputConsumer()) {
            consumer.assign(partitionsOf(output(), topics.output()));
            long start = System.nanoTime();
            copier.start();
            long seen;
            try {
                seen = awaitOutput(consumer, writer, start);
            } catch (Throwable e) {
                stop.set(true);
                copier.join(Duration.ofSeconds(30).toMillis());
                throw e;
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            log("done: " + seen + " output records read in " + String.format(Locale.ROOT, "%.3f", seconds) + " s");
            // Not timed: the copier's last flush or commit is done once its
            // records are visible; what remains is closing its clients.
            copier.join(Duration.ofSeconds(60).toMillis());
            if (copier.isAlive()) {
                stop.set(true);
                throw new IllegalStateException("the copier did not finish within 60 s of the output's end");
            }
            if (failure.get() != null) {
                throw new IllegalStateException("the copy failed", failure.get());
            }
            return seconds;
        }
    }

    /**
     * The copier: reads N input records and writes each to the output
     * partition of its input partition's number, in transactions of
     * TRANSACTION_INTERVAL under exactly_once_v2.
     */
    static void copy(int inputPartitions, AtomicBoolean stop) {
        boolean eos = exactlyOnce();
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (eos) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, appId + "-copy");
        }
        // Under exactly_once_v2 a failed send also fails commitTransaction;
        // under at_least_once flush does not throw, hence the callback.
        AtomicReference<Exception> failed = new AtomicReference<>();
        Callback callback = (metadata, e) -> {
            if (e != null) {
                failed.compareAndSet(null, e);
            }
        };
        // The group `<ID>` by name only (generation -1, no member id), as
        // the spool-streams half commits. This constructor is deprecated
        // for removal in favour of consumer.groupMetadata(), which needs a
        // group.id on the input consumer, and so a coordinator lookup and
        // a committed-offset fetch the other half does not do.
        @SuppressWarnings("removal")
        ConsumerGroupMetadata group = new ConsumerGroupMetadata(appId);
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            if (eos) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            try (KafkaConsumer<byte[], byte[]> consumer = inputConsumer(inputPartitions)) {
                long copied = 0;
                long lastCommit = System.nanoTime();
                while (copied < records) {
                    if (stop.get()) {
                        throw new IllegalStateException("stopped after copying " + copied + " records");
                    }
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                        // Checked before every send: a send that fails
                        // after blocking (max.block.ms) would block again.
                        if (failed.get() != null) {
                            throw new RuntimeException("writing to " + output() + " failed", failed.get());
                        }
                        producer.send(new ProducerRecord<>(output(), r.partition(), r.timestamp(), r.key(),
                                r.value()), callback);
                        copied++;
                    }
                    boolean due = System.nanoTime() - lastCommit >= TRANSACTION_INTERVAL.toNanos()
                            || copied >= records;
                    if (eos && due) {
                        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                        for (TopicPartition tp : consumer.assignment()) {
                            offsets.put(tp, new OffsetAndMetadata(consumer.position(tp)));
                        }
                        producer.sendOffsetsToTransaction(offsets, group);
                        producer.commitTransaction();
                        if (copied < records) {
                            producer.beginTransaction();
                        }
                        lastCommit = System.nanoTime();
                    }
                }
            }
            producer.flush();
        }
        if (failed.get() != null) {
            throw new RuntimeException("writing to " + output() + " failed", failed.get());
        }
    }

    /**
     * passthrough, store and count: runs the application until the output
     * shows the whole input processed; returns the seconds taken.
     */
    static double streams(int outputPartitions) throws Exception {
        AtomicReference<Throwable> failure = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(topology(), streamsConfig());
        // A failed stream thread stops the whole client, so the wait below
        // ends at once instead of after PATIENCE.
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Writer writer = new Writer() {
            @Override
            public void check(long progress) {
                if (failure.get() != null) {
                    throw new IllegalStateException("a stream thread failed", failure.get());
                }
                KafkaStreams.State state = streams.state();
                if (state == KafkaStreams.State.ERROR || state == KafkaStreams.State.PENDING_ERROR
                        || state == KafkaStreams.State.NOT_RUNNING
                        || state == KafkaStreams.State.PENDING_SHUTDOWN) {
                    throw new IllegalStateException("the application stopped (" + state + ") at " + progress
                            + " of " + records + " records");
                }
            }

            @Override
            public String state() {
                return streams.state().toString();
            }
        };

        // The consumer exists and is assigned before the clock starts;
        // connecting it is the measurement's, not the application's, cost.
        try (KafkaConsumer<byte[], byte[]> consumer = outputConsumer()) {
            consumer.assign(partitionsOf(output(), outputPartitions));

            long start = System.nanoTime();
            streams.start();
            long seen;
            try {
                seen = awaitOutput(consumer, writer, start);
            } catch (Throwable e) {
                closeStreams(streams);
                throw e;
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            log("done: " + seen + " output records read in " + String.format(Locale.ROOT, "%.3f", seconds) + " s");
            closeStreams(streams);
            return seconds;
        }
    }

    static void closeStreams(KafkaStreams streams) {
        if (!streams.close(Duration.ofSeconds(30))) {
            log("warning: the application did not close within 30 s");
        }
    }

    /** The partition counts of the input and the output topics. */
    record Partitions(int input, int output) {}

    /**
     * Creates the input and output topics unless they exist; returns their
     * partition counts (the topics' own, should they have existed with
     * another count).
     */
    static Partitions createTopics() throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            Set<String> existing = admin.listTopics().names().get();
            List<NewTopic> missing = new ArrayList<>();
            for (String topic : List.of(input(), output())) {
                if (!existing.contains(topic)) {
                    missing.add(new NewTopic(topic, partitions, (short) 1));
                }
            }
            if (!missing.isEmpty()) {
                try {
                    admin.createTopics(missing).all().get();
                } catch (ExecutionException e) {
                    // Someone else created one in between: fine.
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
            // Described until both are known, so that nothing below
            // depends on how fast metadata spreads after the creation.
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (true) {
                try {
                    Map<String, TopicDescription> described =
                            admin.describeTopics(List.of(input(), output())).allTopicNames().get();
                    int in = described.get(input()).partitions().size();
                    int out = described.get(output()).partitions().size();
                    if (in != partitions || out != partitions) {
                        log("warning: existing topics have " + in + " and " + out
                                + " partitions, not " + partitions);
                    }
                    return new Partitions(in, out);
                } catch (ExecutionException e) {
                    if (System.nanoTime() > deadline) {
                        throw e;
                    }
                    Thread.sleep(200);
                }
            }
        }
    }

    /** Writes the input (not timed) and waits for every acknowledgement. */
    static void fill() throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, Integer.toString(64 * 1024));
        // Lowercase, so that passthrough's toUpperCase changes every byte;
        // the same bytes as `spool bench streams` writes.
        String value = "x".repeat(VALUE_SIZE);
        AtomicReference<Exception> failed = new AtomicReference<>();
        AtomicLong acked = new AtomicLong();
        long start = System.nanoTime();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (long i = 0; i < records && failed.get() == null; i++) {
                producer.send(new ProducerRecord<>(input(), "key-" + (i % keys), value), (metadata, e) -> {
                    if (e != null) {
                        failed.compareAndSet(null, e);
                    } else {
                        acked.incrementAndGet();
                    }
                });
            }
            producer.flush();
        }
        if (failed.get() != null) {
            throw new RuntimeException("filling " + input() + " failed", failed.get());
        }
        if (acked.get() != records) {
            throw new IllegalStateException(acked.get() + " of " + records + " input records acknowledged");
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        log(String.format(Locale.ROOT, "wrote %d records to %s in %.1f s (not timed)", records, input(), seconds));
    }

    static Topology topology() {
        StreamsBuilder builder = new StreamsBuilder();
        if (benchCase.equals("passthrough")) {
            builder.stream(input(), Consumed.with(Serdes.String(), Serdes.String()))
                    .mapValues(v -> v.toUpperCase(Locale.ROOT))
                    .to(output(), Produced.with(Serdes.String(), Serdes.String()));
        } else if (benchCase.equals("store")) {
            // A RocksDB store with its changelog (logging is on by
            // default) and no caching (off unless withCachingEnabled).
            builder.addStateStore(Stores.keyValueStoreBuilder(
                    Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.String()));
            builder.stream(input(), Consumed.with(Serdes.String(), Serdes.String()))
                    .process(PutEach::new, STORE)
                    .to(output(), Produced.with(Serdes.String(), Serdes.String()));
        } else {
            // groupByKey on an unchanged key: no repartition topic, only
            // the store's changelog.
            builder.stream(input(), Consumed.with(Serdes.String(), Serdes.String()))
                    .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
                    .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                            .withKeySerde(Serdes.String())
                            .withValueSerde(Serdes.Long()))
                    .toStream()
                    .to(output(), Produced.with(Serdes.String(), Serdes.Long()));
        }
        return builder.build();
    }

    /** store's store. */
    static final String STORE = "latest";

    /**
     * store: puts each record into the store, then forwards it (Kafka's
     * streamprocesswithstatestore, with a sink so the end shows).
     */
    static final class PutEach implements Processor<String, String, String, String> {
        private ProcessorContext<String, String> context;
        private KeyValueStore<String, String> store;

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.context = context;
            this.store = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, String> record) {
            store.put(record.key(), record.value());
            context.forward(record);
        }
    }

    static Properties streamsConfig() {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // Kafka Streams' default already, stated so the input is read from
        // its start whatever changes there.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // The record cache off: spool-streams has none and forwards every
        // update, so both write one output record per input record. With
        // the cache, Kafka Streams' at_least_once count would wait for its
        // 30 s commit to show any output, and the benchmark would time the
        // commit interval. commit.interval.ms stays at Kafka Streams'
        // defaults (100 ms exactly_once_v2, 30 s at_least_once), as
        // spool-streams' do.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        return p;
    }

    /**
     * A consumer of the input (consume, consume-produce), assigned every
     * partition: it reads what a consumer of the guarantee would,
     * committed records only under exactly_once_v2.
     */
    static KafkaConsumer<byte[], byte[]> inputConsumer(int inputPartitions) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, exactlyOnce() ? "read_committed" : "read_uncommitted");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        consumer.assign(partitionsOf(input(), inputPartitions));
        return consumer;
    }

    static KafkaConsumer<byte[], byte[]> outputConsumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // Only committed output counts: under exactly_once_v2 that is what
        // a downstream reader sees; under at_least_once it is all output.
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** What writes the output (the application, or the copier), watched while the output is read. */
    interface Writer {
        /** Throws when the output can no longer become complete. */
        void check(long progress);

        /** How it is doing, for the progress reports. */
        String state();
    }

    /**
     * Reads the output until it shows the whole input processed; returns
     * how many output records that took. Fails when the writer stops or
     * fails, or PATIENCE runs out.
     */
    static long awaitOutput(KafkaConsumer<byte[], byte[]> consumer, Writer writer, long start) {
        boolean count = benchCase.equals("count");
        // count: each key's latest count, and their sum kept as they change.
        Map<ByteBuffer, Long> latest = new HashMap<>();
        long total = 0;
        long read = 0;
        long deadline = start + PATIENCE.toNanos();
        long nextReport = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (true) {
            long progress = count ? total : read;
            // At least, not exactly: under at_least_once a commit that
            // failed would have some records processed twice.
            if (progress >= records) {
                if (progress > records) {
                    log("warning: output shows " + progress + " records processed of " + records
                            + " written (some twice)");
                }
                return read;
            }
            writer.check(progress);
            long now = System.nanoTime();
            if (now > deadline) {
                throw new IllegalStateException("output shows " + progress + " of " + records
                        + " records processed after " + PATIENCE.toSeconds() + " s");
            }
            if (now > nextReport) {
                log(String.format(Locale.ROOT, "%.1f s: %d of %d records processed (%d output records read), %s",
                        (now - start) / 1e9, progress, records, read, writer.state()));
                nextReport = now + Duration.ofSeconds(5).toNanos();
            }
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                read++;
                if (count) {
                    // Serdes.Long(): 8 bytes, big-endian.
                    long value = ByteBuffer.wrap(r.value()).getLong();
                    Long previous = latest.put(ByteBuffer.wrap(r.key()), value);
                    total += value - (previous == null ? 0 : previous);
                }
            }
        }
    }
}
