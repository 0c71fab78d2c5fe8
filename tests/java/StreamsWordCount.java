// Apache Kafka Streams (4.4.0) with exactly_once_v2 against a broker's
// Kafka listener: spool's, or Apache Kafka's own for comparison. A word
// count is killed in the middle of its input and restarted; every count
// the restarted application wrote must follow the ones written before the
// crash with no word counted twice. Run by tests/kafka_streams_connect.rs:
//
//   java -cp CLASSPATH StreamsWordCount BOOTSTRAP [LINES]
//
// The driver (this mode) creates the topics, writes LINES lines (20000 by
// default) of words from a small vocabulary with an idempotent producer,
// and runs the application twice under one application id and state
// directory:
//
// 1. in a child JVM (`StreamsWordCount app ...`) that halts itself
//    (Runtime.halt: no close, no commit, its transaction left open, as
//    SIGKILL would) once it has processed half of the words and has seen
//    a transaction of its own committed;
// 2. in this JVM, until every word's latest count is the number of times
//    the word was written; then it closes the application.
//
// It then reads the whole output topic with a read_committed consumer:
// with exactly-once processing and the record cache off, each word's
// counts are exactly 1, 2, ..., N in order, across the crash. Prints
// "ok streams" and exits 0, or exits non-zero with the first difference.
// Names are prefixed with a run id, so it can run twice against one broker.
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public final class StreamsWordCount {
    static final String[] VOCABULARY = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
        "golf", "hotel", "india", "juliett", "kilo", "lima",
    };
    static final int PARTITIONS = 2;
    /** The exit code of the child that halted itself as planned. */
    static final int HALTED = 3;
    static final Duration PATIENCE = Duration.ofSeconds(90);

    static String bootstrap;
    static String run;
    static int lines;

    public static void main(String[] args) throws Exception {
        if (args.length >= 1 && args[0].equals("app")) {
            // app BOOTSTRAP RUN LINES STATE_DIR: the first run, which halts.
            bootstrap = args[1];
            run = args[2];
            lines = Integer.parseInt(args[3]);
            crashingRun(Path.of(args[4]));
            return;
        }
        if (args.length < 1 || args.length > 2) {
            throw new IllegalArgumentException("usage: StreamsWordCount BOOTSTRAP [LINES]");
        }
        bootstrap = args[0];
        run = Long.toString(System.currentTimeMillis() % 1_000_000_000L);
        lines = args.length == 2 ? Integer.parseInt(args[1]) : 20_000;
        try {
            drive();
        } catch (Throwable e) {
            // Exit even if some client thread outlived its close.
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("ok streams");
        System.exit(0);
    }

    static void check(boolean holds, String what) {
        if (!holds) {
            throw new AssertionError(what);
        }
    }

    static String input() {
        return "wc-lines-" + run;
    }

    static String output() {
        return "wc-counts-" + run;
    }

    static String line(int i) {
        int words = 1 + i % 4;
        StringBuilder b = new StringBuilder();
        for (int j = 0; j < words; j++) {
            if (j > 0) {
                b.append(' ');
            }
            b.append(VOCABULARY[(i * 7 + j * 5 + i / 13) % VOCABULARY.length]);
        }
        return b.toString();
    }

    static Map<String, Long> expectedCounts() {
        Map<String, Long> counts = new TreeMap<>();
        for (int i = 0; i < lines; i++) {
            for (String w : line(i).split(" ")) {
                counts.merge(w, 1L, Long::sum);
            }
        }
        return counts;
    }

    static long totalWords() {
        return expectedCounts().values().stream().mapToLong(Long::longValue).sum();
    }

    // ----------------------------------------------------------------
    // The driver

    static void drive() throws Exception {
        long start = System.nanoTime();
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(
                    new NewTopic(input(), PARTITIONS, (short) 1),
                    new NewTopic(output(), PARTITIONS, (short) 1))).all().get();
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < lines; i++) {
                producer.send(new ProducerRecord<>(input(), "line-" + i, line(i)));
            }
            producer.flush();
        }
        log(start, "wrote " + lines + " lines (" + totalWords() + " words) to " + input());

        Path stateDir = Files.createTempDirectory("streams-wordcount-");
        try {
            // 1. A child JVM processes half the words and halts.
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            List<String> command = new ArrayList<>(List.of(java, "-Xmx384m"));
            String log4j = System.getProperty("log4j2.configurationFile");
            if (log4j != null) {
                command.add("-Dlog4j2.configurationFile=" + log4j);
            }
            command.addAll(List.of("-cp", System.getProperty("java.class.path"),
                    "StreamsWordCount", "app", bootstrap, run, Integer.toString(lines),
                    stateDir.toString()));
            Process child = new ProcessBuilder(command).inheritIO().start();
            if (!child.waitFor(PATIENCE.toSeconds(), TimeUnit.SECONDS)) {
                child.destroyForcibly();
                throw new AssertionError("the first run did not halt within " + PATIENCE);
            }
            check(child.exitValue() == HALTED,
                    "the first run exited with " + child.exitValue() + ", not by halting itself");
            long[] seen = countOutput();
            log(start, "first run halted: " + seen[0] + " counts committed, "
                    + (seen[1] - seen[0]) + " more written in its open transaction");
            check(seen[0] > 0, "nothing committed before the crash");

            // 2. The same application again, until every count is reached.
            Map<String, Long> expected = expectedCounts();
            KafkaStreams streams = streams(stateDir, null);
            streams.start();
            try {
                awaitCounts(streams, expected);
                awaitPurge();
            } finally {
                streams.close(Duration.ofSeconds(30));
            }
            log(start, "second run reached every count");
        } finally {
            deleteRecursively(stateDir.toFile());
        }

        // 3. Every word's committed counts: exactly 1..N, in order.
        Map<String, List<Long>> counts = readCommitted();
        Map<String, Long> expected = expectedCounts();
        check(counts.keySet().equals(expected.keySet()),
                "counted words " + counts.keySet() + ", wrote " + expected.keySet());
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            List<Long> got = counts.get(e.getKey());
            for (int i = 0; i < got.size(); i++) {
                if (got.get(i) != i + 1) {
                    throw new AssertionError("counts of " + e.getKey() + ": the " + (i + 1)
                            + "th is " + got.get(i) + " (around it: "
                            + got.subList(Math.max(0, i - 3), Math.min(got.size(), i + 4)) + ")");
                }
            }
            check(got.size() == e.getValue(),
                    e.getKey() + " counted to " + got.size() + ", written " + e.getValue() + " times");
        }
        log(start, "every word counted exactly once: " + expected);
    }

    /**
     * Streams deletes what it has committed of its repartition topic
     * (DeleteRecords, every repartition.purge.interval.ms): wait until some
     * partition of it starts after offset 0.
     */
    static void awaitPurge() throws Exception {
        String repartition = "wc-" + run + "-words-repartition";
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        try (Admin admin = Admin.create(ap)) {
            while (true) {
                Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
                for (int p = 0; p < PARTITIONS; p++) {
                    earliest.put(new TopicPartition(repartition, p), OffsetSpec.earliest());
                }
                long purged = admin.listOffsets(earliest).all().get().values().stream()
                        .mapToLong(ListOffsetsResult.ListOffsetsResultInfo::offset).max().orElse(0);
                if (purged > 0) {
                    return;
                }
                check(System.nanoTime() < deadline, repartition + " was never purged");
                Thread.sleep(100);
            }
        }
    }

    static void log(long start, String what) {
        System.out.printf("[%.1fs] %s%n", (System.nanoTime() - start) / 1e9, what);
        System.out.flush();
    }

    // ----------------------------------------------------------------
    // The application

    static KafkaStreams streams(Path stateDir, Runnable onCount) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input(), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .peek((word, count) -> {
                    if (onCount != null) {
                        onCount.run();
                    }
                })
                .to(output(), Produced.with(Serdes.String(), Serdes.Long()));
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "wc-" + run);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        // Purge the repartition topic often, so the run sees it done.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 200);
        // Every update is written, so the output shows every count.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        // Static membership: the restarted instance takes the halted one's
        // place at once instead of waiting out its session (45 s).
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), "wc-instance");
        return new KafkaStreams(builder.build(), p);
    }

    /** The first run: halts after half the words once a commit is seen. */
    static void crashingRun(Path stateDir) throws Exception {
        long half = totalWords() / 2;
        AtomicLong processed = new AtomicLong();
        AtomicBoolean committed = new AtomicBoolean();
        KafkaStreams streams = streams(stateDir, () -> {
            if (processed.incrementAndGet() >= half && committed.get()) {
                System.out.println("first run: halting after " + processed.get() + " counts");
                System.out.flush();
                Runtime.getRuntime().halt(HALTED);
            }
        });
        Thread watcher = new Thread(() -> {
            try (KafkaConsumer<String, Long> consumer = outputConsumer()) {
                List<TopicPartition> all = outputPartitions();
                consumer.assign(all);
                consumer.seekToBeginning(all);
                while (!committed.get()) {
                    if (!consumer.poll(Duration.ofMillis(100)).isEmpty()) {
                        committed.set(true);
                    }
                }
            }
        });
        watcher.setDaemon(true);
        watcher.start();
        streams.start();
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        while (System.nanoTime() < deadline && streams.state().isRunningOrRebalancing()) {
            Thread.sleep(100);
        }
        System.out.println("first run: did not halt; processed " + processed.get() + " counts of "
                + totalWords() + ", committed seen: " + committed.get() + ", state " + streams.state());
        Runtime.getRuntime().halt(1);
    }

    // ----------------------------------------------------------------
    // Reading the output

    static List<TopicPartition> outputPartitions() {
        List<TopicPartition> all = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            all.add(new TopicPartition(output(), p));
        }
        return all;
    }

    static KafkaConsumer<String, Long> outputConsumer(String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer());
    }

    static KafkaConsumer<String, Long> outputConsumer() {
        return outputConsumer("read_committed");
    }

    /** Records up to the end offsets as `isolation` sees them. */
    static List<ConsumerRecord<String, Long>> readToEnd(String isolation) {
        List<ConsumerRecord<String, Long>> got = new ArrayList<>();
        try (KafkaConsumer<String, Long> consumer = outputConsumer(isolation)) {
            List<TopicPartition> all = outputPartitions();
            consumer.assign(all);
            consumer.seekToBeginning(all);
            Map<TopicPartition, Long> end = consumer.endOffsets(all);
            long deadline = System.nanoTime() + PATIENCE.toNanos();
            while (all.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                check(System.nanoTime() < deadline, "reading " + output() + " to " + end
                        + " (" + isolation + ") took too long");
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                    got.add(r);
                }
            }
        }
        return got;
    }

    /** Counts written and committed, counts written at all. */
    static long[] countOutput() {
        return new long[] {readToEnd("read_committed").size(), readToEnd("read_uncommitted").size()};
    }

    static Map<String, List<Long>> readCommitted() {
        Map<String, List<Long>> counts = new TreeMap<>();
        for (ConsumerRecord<String, Long> r : readToEnd("read_committed")) {
            counts.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
        }
        return counts;
    }

    /** Waits until every word's latest committed count is the expected one. */
    static void awaitCounts(KafkaStreams streams, Map<String, Long> expected) {
        Map<String, Long> latest = new HashMap<>();
        try (KafkaConsumer<String, Long> consumer = outputConsumer()) {
            List<TopicPartition> all = outputPartitions();
            consumer.assign(all);
            consumer.seekToBeginning(all);
            long deadline = System.nanoTime() + PATIENCE.toNanos();
            while (!latest.equals(expected)) {
                check(System.nanoTime() < deadline,
                        "counts after " + PATIENCE + ": " + latest + ", expected " + expected);
                check(streams.state().isRunningOrRebalancing(),
                        "the second run stopped (" + streams.state() + ") at counts " + latest);
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                    latest.put(r.key(), r.value());
                    check(r.value() <= expected.getOrDefault(r.key(), 0L),
                            r.key() + " counted to " + r.value() + ", written "
                            + expected.get(r.key()) + " times");
                }
            }
        }
    }

    static void deleteRecursively(File f) {
        File[] children = f.listFiles();
        if (children != null) {
            for (File c : children) {
                deleteRecursively(c);
            }
        }
        f.delete();
    }
}
