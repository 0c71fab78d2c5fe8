// connect-file 4.3.1 (the newest the package registry here serves) asks
// org.apache.kafka.common.utils.AppInfoParser for its version, a class
// Kafka 4.4.0 moved to org.apache.kafka.common.utils.internals: without
// this stand-in the 4.4.0 Connect runtime fails every REST request that
// validates a file connector (NoClassDefFoundError, HTTP 500). It is the
// one class connect-file 4.3.1 uses that 4.4.0 lacks. Compiled with
// ConnectFilePipe.java by tests/kafka_streams_connect.rs.
package org.apache.kafka.common.utils;

public final class AppInfoParser {
    private AppInfoParser() {}

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }

    public static String getCommitId() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getCommitId();
    }
}
