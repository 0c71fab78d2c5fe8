// Apache Kafka Connect (the 4.4.0 runtime, connect-file 4.3.1) against a
// broker's Kafka listener: spool's, or Apache Kafka's own for comparison.
// Run by tests/kafka_streams_connect.rs:
//
//   java -cp CLASSPATH ConnectFilePipe BOOTSTRAP [LINES]
//
// Starts a distributed worker in this JVM (ConnectDistributed, as
// connect-distributed.sh does) whose group and config, offset and status
// topics live on the broker, its REST API on a free loopback port. Through
// that API it creates a FileStreamSource connector that reads a file of
// LINES lines (5000 by default) into a topic, which the worker creates
// (topic.creation), and a FileStreamSink connector that writes the topic to
// another file; waits until the output file has every line, checks both
// connectors' offsets as the API reports them, stops the sink and resets
// its offsets, deletes the connectors and stops the worker. Prints "ok connect" and exits 0, or exits non-zero with
// the first difference. Names are prefixed with a run id.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.cli.ConnectDistributed;
import org.apache.kafka.connect.runtime.Connect;

public final class ConnectFilePipe {
    static final Duration PATIENCE = Duration.ofSeconds(90);
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newHttpClient();
    static URI rest;
    static long start = System.nanoTime();

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            throw new IllegalArgumentException("usage: ConnectFilePipe BOOTSTRAP [LINES]");
        }
        String bootstrap = args[0];
        int lines = args.length == 2 ? Integer.parseInt(args[1]) : 5000;
        String run = Long.toString(System.currentTimeMillis() % 1_000_000_000L);
        Path dir = Files.createTempDirectory("connect-file-pipe-");
        int status = 0;
        try {
            pipe(bootstrap, run, lines, dir);
        } catch (Throwable e) {
            e.printStackTrace();
            status = 1;
        } finally {
            deleteRecursively(dir.toFile());
        }
        if (status == 0) {
            System.out.println("ok connect");
        }
        // Exit even if some worker thread outlived the worker's stop.
        System.exit(status);
    }

    static void check(boolean holds, String what) {
        if (!holds) {
            throw new AssertionError(what);
        }
    }

    static void log(String what) {
        System.out.printf("[%.1fs] %s%n", (System.nanoTime() - start) / 1e9, what);
        System.out.flush();
    }

    static void pipe(String bootstrap, String run, int lines, Path dir) throws Exception {
        List<String> written = new ArrayList<>();
        for (int i = 0; i < lines; i++) {
            written.add("line " + i + " " + "x".repeat(i % 23));
        }
        Path input = dir.resolve("input.txt");
        Path output = dir.resolve("output.txt");
        Files.write(input, written, StandardCharsets.UTF_8);

        Map<String, String> worker = new HashMap<>();
        worker.put("bootstrap.servers", bootstrap);
        worker.put("group.id", "connect-" + run);
        worker.put("config.storage.topic", "connect-configs-" + run);
        worker.put("offset.storage.topic", "connect-offsets-" + run);
        worker.put("status.storage.topic", "connect-status-" + run);
        worker.put("config.storage.replication.factor", "1");
        worker.put("offset.storage.replication.factor", "1");
        worker.put("status.storage.replication.factor", "1");
        worker.put("key.converter", "org.apache.kafka.connect.storage.StringConverter");
        worker.put("value.converter", "org.apache.kafka.connect.storage.StringConverter");
        worker.put("listeners", "http://127.0.0.1:0");
        worker.put("offset.flush.interval.ms", "500");
        // Every plugin on the classpath has a ServiceLoader manifest: no scan.
        worker.put("plugin.discovery", "service_load");
        Connect<?> connect = new ConnectDistributed().startConnect(worker);
        try {
            rest = connect.rest().advertisedUrl();
            log("worker started, REST API at " + rest);
            String topic = "connect-lines-" + run;
            String source = "file-source-" + run;
            String sink = "file-sink-" + run;
            create(source, Map.of(
                    "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
                    "tasks.max", "1",
                    "file", input.toString(),
                    "topic", topic,
                    "topic.creation.default.partitions", "1",
                    "topic.creation.default.replication.factor", "1"));
            create(sink, Map.of(
                    "connector.class", "org.apache.kafka.connect.file.FileStreamSinkConnector",
                    "tasks.max", "1",
                    "file", output.toString(),
                    "topics", topic));
            awaitRunning(source);
            awaitRunning(sink);
            log("both connectors running");

            long deadline = System.nanoTime() + PATIENCE.toNanos();
            List<String> read = List.of();
            while (read.size() < lines) {
                check(System.nanoTime() < deadline,
                        "the output file has " + read.size() + " of " + lines + " lines");
                Thread.sleep(200);
                read = Files.exists(output) ? Files.readAllLines(output, StandardCharsets.UTF_8) : List.of();
            }
            Thread.sleep(1000); // anything more would be a duplicate
            read = Files.readAllLines(output, StandardCharsets.UTF_8);
            for (int i = 0; i < Math.min(read.size(), lines); i++) {
                check(read.get(i).equals(written.get(i)),
                        "output line " + i + " is `" + read.get(i) + "`, expected `" + written.get(i) + "`");
            }
            check(read.size() == lines, "the output file has " + read.size() + " lines, the input " + lines);
            log("the output file has the " + lines + " input lines");

            // Offsets as the worker reports them: the source's position in
            // its file (from the offset topic), the sink's group offsets.
            long size = Files.size(input);
            awaitOffsets(source, "position", size);
            awaitOffsets(sink, "kafka_offset", lines);
            log("offsets: source at byte " + size + ", sink at offset " + lines);

            // A stopped sink's offsets reset over REST: the worker deletes
            // the sink's consumer group (DeleteGroups on the broker).
            HttpResponse<String> stopped = call("PUT", "/connectors/" + sink + "/stop", null);
            check(stopped.statusCode() == 202 || stopped.statusCode() == 204,
                    "PUT stop: " + stopped.statusCode() + " " + stopped.body());
            awaitConnectorState(sink, "STOPPED");
            HttpResponse<String> reset = call("DELETE", "/connectors/" + sink + "/offsets", null);
            check(reset.statusCode() == 200, "DELETE offsets: " + reset.statusCode() + " " + reset.body());
            HttpResponse<String> after = call("GET", "/connectors/" + sink + "/offsets", null);
            check(after.statusCode() == 200 && JSON.readTree(after.body()).path("offsets").isEmpty(),
                    "the sink's offsets after the reset: " + after.body());
            log("the stopped sink's offsets reset");

            for (String name : List.of(source, sink)) {
                HttpResponse<String> r = call("DELETE", "/connectors/" + name, null);
                check(r.statusCode() == 204, "DELETE " + name + ": " + r.statusCode() + " " + r.body());
            }
            deadline = System.nanoTime() + PATIENCE.toNanos();
            while (true) {
                HttpResponse<String> r = call("GET", "/connectors", null);
                if (r.statusCode() == 200 && JSON.readTree(r.body()).isEmpty()) {
                    break;
                }
                check(System.nanoTime() < deadline, "connectors after deleting them: " + r.body());
                Thread.sleep(200);
            }
            log("connectors deleted");
        } finally {
            connect.stop();
            connect.awaitStop();
        }
        log("worker stopped");
    }

    static HttpResponse<String> call(String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(rest.resolve(path))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json")
                .header("Accept", "application/json");
        b.method(method, body == null
                ? HttpRequest.BodyPublishers.noBody()
                : HttpRequest.BodyPublishers.ofString(body));
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** POST /connectors, retried while the worker joins its group. */
    static void create(String name, Map<String, String> config) throws Exception {
        String body = JSON.writeValueAsString(Map.of("name", name, "config", config));
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        while (true) {
            HttpResponse<String> r = call("POST", "/connectors", body);
            if (r.statusCode() == 201) {
                return;
            }
            check(System.nanoTime() < deadline && r.statusCode() >= 409,
                    "creating " + name + ": " + r.statusCode() + " " + r.body());
            Thread.sleep(500);
        }
    }

    /** Waits until the connector and its task are RUNNING. */
    static void awaitRunning(String name) throws Exception {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            HttpResponse<String> r = call("GET", "/connectors/" + name + "/status", null);
            last = r.statusCode() + " " + r.body();
            if (r.statusCode() == 200) {
                JsonNode status = JSON.readTree(r.body());
                check(!status.toString().contains("FAILED"), name + " failed: " + last);
                JsonNode tasks = status.path("tasks");
                if (status.path("connector").path("state").asText().equals("RUNNING")
                        && tasks.size() == 1
                        && tasks.get(0).path("state").asText().equals("RUNNING")) {
                    return;
                }
            }
            Thread.sleep(200);
        }
        throw new AssertionError(name + " not running: " + last);
    }

    /** Waits until the connector's own state is `state`. */
    static void awaitConnectorState(String name, String state) throws Exception {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            HttpResponse<String> r = call("GET", "/connectors/" + name + "/status", null);
            last = r.statusCode() + " " + r.body();
            if (r.statusCode() == 200
                    && JSON.readTree(r.body()).path("connector").path("state").asText().equals(state)) {
                return;
            }
            Thread.sleep(200);
        }
        throw new AssertionError(name + " never " + state + ": " + last);
    }

    /** Waits until GET /connectors/NAME/offsets reports `field` = `value`. */
    static void awaitOffsets(String name, String field, long value) throws Exception {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            HttpResponse<String> r = call("GET", "/connectors/" + name + "/offsets", null);
            last = r.statusCode() + " " + r.body();
            if (r.statusCode() == 200) {
                JsonNode offsets = JSON.readTree(r.body()).path("offsets");
                if (offsets.size() == 1 && offsets.get(0).path("offset").path(field).asLong() == value) {
                    return;
                }
            }
            Thread.sleep(200);
        }
        throw new AssertionError(name + "'s offsets: " + last + ", expected " + field + " " + value);
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
