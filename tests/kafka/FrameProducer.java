// Writes frames to a topic with Apache Kafka's own Java producer (a client kafka-actors did not
// write) and prints the ground truth it computed itself, for the tests on the real cluster.
//
//   tests/kafka/cluster produce --topic T [--frames N] [--users U] [--compression none|gzip|snappy|lz4|zstd]
//       [--seed S] [--start-ts SECS] [--event-rate FRAMES_PER_EVENT_SECOND] [--jitter-ms MS]
//       [--bad-every K] [--window SECS] [--rate FRAMES_PER_SECOND]
//       [--transaction-size N [--abort-every K]]
//
// Frames are keyed by uid, so each uid lives in one partition. Event time advances one second
// every --event-rate frames and each frame is up to --jitter-ms older than that (out of order).
// `ts` is written as an integer, a float with milliseconds, or in exponent form; some uids are
// written with JSON escapes; some frames carry extra fields. Every --bad-every-th record is
// invalid, cycling through the kinds below, named by the reason the service must count.
//
// Output (stdout), after every record is acknowledged (acks=all, idempotent):
//   {"window_start":W,"partition":P,"unique_users":U,"frames":F}   one per window and partition
//   {"produced":N,"valid":V,"invalid":{"reason":count,...}}           last line
// With --rate, frames are sent at about that many per second (0: as fast as possible).
// With --transaction-size, records are written in transactions of that many records and every
// --abort-every-th transaction is aborted: its records are in the log but not in the truth
// (a read_committed consumer never sees them). The last transaction is committed.

import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class FrameProducer {
    record Bad(String reason, byte[] value) {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) throw new IllegalArgumentException("unexpected " + args[i]);
            opt.put(args[i].substring(2), args[i + 1]);
        }
        String bootstrap = req(opt, "bootstrap");
        String topic = req(opt, "topic");
        long frames = Long.parseLong(opt.getOrDefault("frames", "20000"));
        int users = Integer.parseInt(opt.getOrDefault("users", "2000"));
        String compression = opt.getOrDefault("compression", "none");
        long seed = Long.parseLong(opt.getOrDefault("seed", "11"));
        long startMs = Long.parseLong(opt.getOrDefault("start-ts", "1790000000")) * 1000;
        double eventRate = Double.parseDouble(opt.getOrDefault("event-rate", "1000"));
        long jitterMs = Long.parseLong(opt.getOrDefault("jitter-ms", "2000"));
        long badEvery = Long.parseLong(opt.getOrDefault("bad-every", "0"));
        long windowMs = Long.parseLong(opt.getOrDefault("window", "10")) * 1000;
        double rate = Double.parseDouble(opt.getOrDefault("rate", "0"));
        long transactionSize = Long.parseLong(opt.getOrDefault("transaction-size", "0"));
        long abortEvery = Long.parseLong(opt.getOrDefault("abort-every", "0"));

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, "65536");
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (transactionSize > 0) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "frame-producer-" + topic + "-" + seed);
        }

        Random random = new Random(seed);
        // window start -> partition -> (uids, frames)
        TreeMap<Long, TreeMap<Integer, Set<String>>> uids = new TreeMap<>();
        TreeMap<Long, TreeMap<Integer, long[]>> counts = new TreeMap<>();
        TreeMap<String, Long> invalid = new TreeMap<>();
        AtomicReference<Exception> failure = new AtomicReference<>();
        long valid = 0;
        long aborted = 0;
        long started = System.nanoTime();
        // Acknowledged frames of the open transaction: (window, partition, uid), counted into the
        // truth only when it commits.
        List<Object[]> pending = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            if (transactionSize > 0) producer.initTransactions();
            for (long i = 0; i < frames; i++) {
                if (transactionSize > 0 && i % transactionSize == 0) {
                    if (i > 0) {
                        long txn = i / transactionSize;
                        if (abortEvery > 0 && txn % abortEvery == 0) {
                            // Written to the log first, then aborted: a reader must skip them.
                            producer.flush();
                            producer.abortTransaction();
                            synchronized (uids) { aborted += pending.size(); pending.clear(); }
                        } else {
                            producer.commitTransaction();
                            synchronized (uids) { commit(pending, uids, counts); }
                        }
                    }
                    producer.beginTransaction();
                }
                if (rate > 0) {
                    long due = started + (long) (i / rate * 1e9);
                    long wait = due - System.nanoTime();
                    if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
                if (badEvery > 0 && i % badEvery == badEvery - 1) {
                    long n = i / badEvery;
                    Bad bad = bad(n, startMs, random);
                    invalid.merge(bad.reason(), 1L, Long::sum);
                    // A dead letter carries the record's key and headers on: every other one
                    // has a key; each has a header, every third one also a header without value.
                    byte[] key = n % 2 == 0 ? ("bad-" + n).getBytes(StandardCharsets.UTF_8) : null;
                    List<Header> headers = new ArrayList<>();
                    headers.add(new RecordHeader("frame-producer.bad", Long.toString(n).getBytes(StandardCharsets.UTF_8)));
                    if (n % 3 == 0) headers.add(new RecordHeader("frame-producer.empty", null));
                    producer.send(new ProducerRecord<>(topic, null, key, bad.value(), headers), (m, e) -> {
                        if (e != null) failure.compareAndSet(null, e);
                    });
                    continue;
                }
                String uid = "user-" + random.nextInt(users);
                long baseMs = startMs + (long) (i * 1000 / eventRate);
                long tsMs = baseMs - (jitterMs > 0 ? (long) (random.nextDouble() * jitterMs) : 0);
                String value = "{" + tsField(tsMs, i) + ",\"uid\":" + uidJson(uid, random)
                    + (i % 7 == 0 ? ",\"extra\":{\"a\":[1,2,{\"b\":null}],\"s\":\"x\"}" : "") + "}";
                if (i % 2 == 1) {
                    // Field order is free.
                    value = "{\"uid\":" + uidJson(uid, random) + "," + tsField(tsMs, i) + "}";
                }
                long window = Math.floorDiv(tsMs, windowMs) * windowMs / 1000;
                valid++;
                producer.send(new ProducerRecord<>(topic, uid.getBytes(StandardCharsets.UTF_8),
                        value.getBytes(StandardCharsets.UTF_8)), (m, e) -> {
                    if (e != null) {
                        failure.compareAndSet(null, e);
                        return;
                    }
                    synchronized (uids) {
                        pending.add(new Object[] {window, m.partition(), uid});
                        if (transactionSize == 0) commit(pending, uids, counts);
                    }
                });
            }
            if (transactionSize > 0) {
                producer.commitTransaction();
                synchronized (uids) { commit(pending, uids, counts); }
            }
            producer.flush();
        }
        valid -= aborted;
        if (failure.get() != null) {
            System.err.println("FrameProducer: a record was not acknowledged: " + failure.get());
            System.exit(1);
        }
        StringBuilder out = new StringBuilder();
        for (var w : counts.entrySet()) {
            for (var p : w.getValue().entrySet()) {
                out.append("{\"window_start\":").append(w.getKey())
                    .append(",\"partition\":").append(p.getKey())
                    .append(",\"unique_users\":").append(uids.get(w.getKey()).get(p.getKey()).size())
                    .append(",\"frames\":").append(p.getValue()[0]).append("}\n");
            }
        }
        out.append("{\"produced\":").append(frames).append(",\"valid\":").append(valid).append(",\"invalid\":{");
        StringJoiner reasons = new StringJoiner(",");
        invalid.forEach((k, v) -> reasons.add("\"" + k + "\":" + v));
        out.append(reasons).append("}}\n");
        System.out.print(out);
    }

    /** Counts acknowledged frames into the truth. */
    static void commit(List<Object[]> pending, TreeMap<Long, TreeMap<Integer, Set<String>>> uids,
                       TreeMap<Long, TreeMap<Integer, long[]>> counts) {
        for (Object[] f : pending) {
            long window = (Long) f[0];
            int partition = (Integer) f[1];
            uids.computeIfAbsent(window, w -> new TreeMap<>())
                .computeIfAbsent(partition, p -> new HashSet<>()).add((String) f[2]);
            counts.computeIfAbsent(window, w -> new TreeMap<>())
                .computeIfAbsent(partition, p -> new long[1])[0]++;
        }
        pending.clear();
    }

    static String req(Map<String, String> opt, String key) {
        String v = opt.get(key);
        if (v == null) throw new IllegalArgumentException("--" + key + " is required");
        return v;
    }

    /** `ts` as an integer, a float with milliseconds, or an integer in exponent form. */
    static String tsField(long tsMs, long i) {
        long secs = Math.floorDiv(tsMs, 1000);
        switch ((int) (i % 3)) {
            case 0: return "\"ts\":" + secs;
            case 1: return String.format(Locale.ROOT, "\"ts\":%d.%03d", secs, Math.floorMod(tsMs, 1000));
            default: {
                String digits = Long.toString(secs);
                return "\"ts\":" + digits.charAt(0) + "." + digits.substring(1) + "e" + (digits.length() - 1);
            }
        }
    }

    /** The uid as a JSON string, sometimes with its characters escaped. */
    static String uidJson(String uid, Random random) {
        if (random.nextInt(5) != 0) return "\"" + uid + "\"";
        StringBuilder s = new StringBuilder("\"");
        for (char c : uid.toCharArray()) {
            if (c == '-') s.append("\\u002d"); else s.append(c);
        }
        return s.append("\"").toString();
    }

    /** The n-th invalid record, cycling through the kinds. */
    static Bad bad(long n, long startMs, Random random) {
        long ts = startMs / 1000;
        String json;
        switch ((int) (n % 17)) {
            case 0: return new Bad("not_json", "not json at all".getBytes(StandardCharsets.UTF_8));
            case 1: return new Bad("not_json", ("{\"ts\":" + ts + ",").getBytes(StandardCharsets.UTF_8));
            case 2: return new Bad("not_json", new byte[0]);
            case 3: return new Bad("not_json", null);
            case 4: json = "{\"ts\":" + ts + ",\"ts\":" + ts + ",\"uid\":\"dup\"}"; return new Bad("not_json", utf8(json));
            case 5: return new Bad("not_object", utf8("[1,2,3]"));
            case 6: return new Bad("not_object", utf8("\"a string\""));
            case 7: return new Bad("missing_field", utf8("{\"ts\":" + ts + "}"));
            case 8: return new Bad("missing_field", utf8("{\"uid\":\"u\",\"time\":" + ts + "}"));
            case 9: return new Bad("wrong_type", utf8("{\"ts\":\"" + ts + "\",\"uid\":\"u\"}"));
            case 10: return new Bad("wrong_type", utf8("{\"ts\":" + ts + ",\"uid\":7}"));
            case 11: return new Bad("wrong_type", utf8("{\"ts\":null,\"uid\":\"u\"}"));
            case 12: return new Bad("implausible_ts", utf8("{\"ts\":5,\"uid\":\"u\"}"));
            case 13: return new Bad("implausible_ts", utf8("{\"ts\":-1790000000.5,\"uid\":\"u\"}"));
            // Plausible (before 2100) but decades ahead of the clock.
            case 16: return new Bad("future_ts", utf8("{\"ts\":4000000000,\"uid\":\"u\"}"));
            case 14: {
                byte[] head = utf8("{\"ts\":" + ts + ",\"uid\":\"");
                byte[] value = Arrays.copyOf(head, head.length + 4);
                value[head.length] = (byte) 0xff;
                value[head.length + 1] = (byte) 0xfe;
                value[head.length + 2] = '"';
                value[head.length + 3] = '}';
                return new Bad("not_utf8", value);
            }
            default: {
                String pad = "x".repeat(5000);
                return new Bad("too_large", utf8("{\"ts\":" + ts + ",\"uid\":\"u\",\"pad\":\"" + pad + "\"}"));
            }
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
