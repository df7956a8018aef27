package dev.switchyard.kstreams;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams baseline: the payment plugin's booking decision ({@link Decision}) as a Kafka
 * Streams application, for the benchmark's P1 and tests/kstreams.rs.
 *
 * <p>It reads catalog-000 {@code booking.booking.created} events from the input topic and writes
 * each decision to {@code <output-prefix><event type>} ({@code payment.payment.succeeded} or
 * {@code payment.payment.failed}), keyed by {@code payment_id}, with the router's headers
 * ({@code switchyard-hop}, {@code switchyard-plugin}, and {@code switchyard-plugin-version}
 * {@code kstreams}). A record the plugin could not read (the
 * router dead-letters it) or that is not a snake_case {@code booking.booking.created} (the router
 * would not route it to the plugin) is logged, counted and skipped.
 *
 * <p>The state store keeps what the router keeps for this plugin: the plugin keeps nothing of its
 * own for a charge, and the router remembers every handled event by id with its output (the
 * processed mark and the outbox), so a redelivered event gets its stored output again instead of
 * a new decision. Here that is a key-value store from the input's event id to its output, RocksDB
 * by default ({@code --store memory} for an in-memory one), changelogged as Kafka Streams does by
 * default ({@code --changelog false} turns that off).
 *
 * <p>Settings are {@code --name value} arguments or {@code KSTREAMS_NAME} variables (upper case,
 * {@code _} for {@code -}); see {@link #USAGE}. It prints {@code running} when Kafka Streams is
 * running, {@code first} when it handles its first record, and stops cleanly on SIGTERM or when
 * its standard input closes.
 */
public final class PaymentStreams {
  /** The settings, with their defaults. */
  static final String USAGE =
      """
      dev.switchyard.kstreams.PaymentStreams, the payment decision on Kafka Streams. Settings
      (--name value, or the variable KSTREAMS_NAME):
        --bootstrap-servers   brokers (default 127.0.0.1:9092)
        --application-id      Kafka Streams' application id, its consumer group (default kstreams-payment)
        --guarantee           exactly_once_v2 or at_least_once (default at_least_once)
        --input               input topic (default booking.booking.created)
        --output-prefix       output topic = prefix + event type (default none)
        --commit-interval-ms  commit interval (default 100 with exactly_once_v2, else 30000)
        --threads             stream threads (default: available processors)
        --state-dir           state folder (default a temporary one)
        --store               rocksdb or memory (default rocksdb)
        --changelog           true or false: changelog the store (default true)
        --plugin              the plugin name in derived ids (default payment)
        --source              metadata.source of outputs (default switchyard/payment)
        --provider            payment provider (default stripe)
        --decline-cards       comma-separated cards always declined (default none)
        --default-card        card charged when an event has none (default 4242424242424242)
        --max-amount          the largest amount approved (default no limit)
        --currencies          comma-separated currencies accepted (default USD,EUR,GBP)
        --property            k=v[,k=v...]: any other Kafka Streams or client property
      """;

  /** The {@code switchyard-plugin-version} header of every output. */
  static final byte[] VERSION = "kstreams".getBytes(StandardCharsets.UTF_8);

  /** The store's name (and its changelog's, {@code <application-id>-processed-changelog}). */
  static final String STORE = "processed";

  private PaymentStreams() {}

  /** Runs the application until SIGTERM or the end of standard input. */
  public static void main(String[] args) throws Exception {
    Settings s = new Settings(args);
    String guarantee = s.get("guarantee", "at_least_once");
    if (!guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)
        && !guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
      throw new IllegalArgumentException("--guarantee must be exactly_once_v2 or at_least_once");
    }
    boolean eos = guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2);
    String maxAmount = s.get("max-amount", "");
    Decision.Config config =
        new Decision.Config(
            s.get("plugin", "payment"),
            s.get("source", "switchyard/payment"),
            s.get("provider", "stripe"),
            list(s.get("decline-cards", "")),
            s.get("default-card", "4242424242424242"),
            maxAmount.isEmpty() ? null : Double.valueOf(maxAmount),
            list(s.get("currencies", "USD,EUR,GBP")));
    String input = s.get("input", Decision.INPUT_TYPE);
    String prefix = s.get("output-prefix", "");

    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, s.get("bootstrap-servers", "127.0.0.1:9092"));
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, s.get("application-id", "kstreams-payment"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(
        StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, s.get("commit-interval-ms", eos ? "100" : "30000"));
    props.put(
        StreamsConfig.NUM_STREAM_THREADS_CONFIG,
        s.get("threads", String.valueOf(Runtime.getRuntime().availableProcessors())));
    String stateDir = s.get("state-dir", "");
    props.put(
        StreamsConfig.STATE_DIR_CONFIG,
        stateDir.isEmpty()
            ? java.nio.file.Files.createTempDirectory("kstreams-payment").toString()
            : stateDir);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    for (String kv : list(s.get("property", ""))) {
      int eq = kv.indexOf('=');
      props.put(kv.substring(0, eq), kv.substring(eq + 1));
    }

    KafkaStreams streams =
        new KafkaStreams(
            topology(config, input, prefix, s.get("store", "rocksdb"), s.get("changelog", "true")),
            props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            say("running");
          }
          if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
            stopped.countDown();
          }
        });
    Runnable close =
        () -> {
          streams.close(Duration.ofSeconds(10));
          stopped.countDown();
        };
    Runtime.getRuntime().addShutdownHook(new Thread(close));
    Thread stdin =
        new Thread(
            () -> {
              try (InputStream in = System.in) {
                while (in.read() >= 0) {}
              } catch (IOException e) {
                // A closed stdin is the signal either way.
              }
              close.run();
            });
    stdin.setDaemon(true);
    streams.start();
    stdin.start();
    stopped.await();
    say("stopped, " + Handler.skipped.get() + " records skipped");
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }

  /** The topology: input → decide (with the store) → the output topic of the event's type. */
  static Topology topology(
      Decision.Config config, String input, String prefix, String store, String changelog) {
    KeyValueBytesStoreSupplier supplier =
        switch (store) {
          case "rocksdb" -> Stores.persistentKeyValueStore(STORE);
          case "memory" -> Stores.inMemoryKeyValueStore(STORE);
          default -> throw new IllegalArgumentException("--store must be rocksdb or memory");
        };
    StoreBuilder<KeyValueStore<String, byte[]>> storeBuilder =
        Stores.keyValueStoreBuilder(supplier, Serdes.String(), Serdes.ByteArray());
    if (!Boolean.parseBoolean(changelog)) {
      storeBuilder = storeBuilder.withLoggingDisabled();
    }
    Topology topology = new Topology();
    topology.addSource(
        "input", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(), input);
    topology.addProcessor("decide", () -> new Handler(config, input), "input");
    topology.addStateStore(storeBuilder, "decide");
    for (String type : List.of(Decision.SUCCEEDED, Decision.FAILED)) {
      topology.addSink(
          type,
          prefix + type,
          Serdes.String().serializer(),
          Serdes.ByteArray().serializer(),
          "decide");
    }
    return topology;
  }

  /** The processor: decides each record, or re-emits the output stored for its event id. */
  static final class Handler implements Processor<byte[], byte[], String, byte[]> {
    /** Records skipped, over every thread. */
    static final AtomicLong skipped = new AtomicLong();

    private static final AtomicBoolean first = new AtomicBoolean();
    private final Decision.Config config;
    private final String input;
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, byte[]> processed;

    Handler(Decision.Config config, String input) {
      this.config = config;
      this.input = input;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.processed = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
      if (first.compareAndSet(false, true)) {
        say("first");
      }
      if (record.value() == null) {
        skip("a tombstone");
        return;
      }
      Decision.Output o;
      try {
        o = Decision.decide(config, input, record.value());
      } catch (Decision.Skip why) {
        skip(why.getMessage());
        return;
      }
      String type = o.type();
      String key = o.key();
      byte[] out = o.value();
      byte[] stored = processed.get(o.inputId());
      if (stored != null) {
        // Redelivered: the stored output, as the router re-produces its outbox.
        int a = indexOf(stored, 0);
        int b = indexOf(stored, a + 1);
        type = new String(stored, 0, a, StandardCharsets.UTF_8);
        key = new String(stored, a + 1, b - a - 1, StandardCharsets.UTF_8);
        out = Arrays.copyOfRange(stored, b + 1, stored.length);
      } else {
        processed.put(o.inputId(), join(type, key, out));
      }
      int hops = 0;
      var hop = record.headers().lastHeader("switchyard-hop");
      if (hop != null) {
        try {
          hops = Integer.parseInt(new String(hop.value(), StandardCharsets.UTF_8).trim());
        } catch (NumberFormatException e) {
          hops = 0;
        }
      }
      Headers headers = new RecordHeaders();
      headers.add("switchyard-hop", String.valueOf(hops + 1).getBytes(StandardCharsets.UTF_8));
      headers.add("switchyard-plugin", config.plugin().getBytes(StandardCharsets.UTF_8));
      headers.add("switchyard-plugin-version", VERSION);
      context.forward(new Record<>(key, out, record.timestamp(), headers), type);
    }

    private static void skip(String why) {
      if (skipped.incrementAndGet() <= 10) {
        System.err.println("kstreams: skipped a record: " + why);
      }
    }
  }

  private static byte[] join(String type, String key, byte[] value) {
    byte[] t = type.getBytes(StandardCharsets.UTF_8);
    byte[] k = key.getBytes(StandardCharsets.UTF_8);
    byte[] out = new byte[t.length + 1 + k.length + 1 + value.length];
    System.arraycopy(t, 0, out, 0, t.length);
    System.arraycopy(k, 0, out, t.length + 1, k.length);
    System.arraycopy(value, 0, out, t.length + k.length + 2, value.length);
    return out;
  }

  private static int indexOf(byte[] bytes, int from) {
    for (int i = from; i < bytes.length; i++) {
      if (bytes[i] == 0) {
        return i;
      }
    }
    throw new IllegalStateException("a corrupt stored output");
  }

  private static List<String> list(String csv) {
    return Arrays.stream(csv.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
  }

  /** A line on standard output, flushed at once: the caller times on it. */
  static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  /** {@code --name value} arguments over {@code KSTREAMS_NAME} variables. */
  static final class Settings {
    private final java.util.Map<String, String> args = new java.util.HashMap<>();

    Settings(String[] argv) {
      for (int i = 0; i < argv.length; i++) {
        if (argv[i].equals("--help") || !argv[i].startsWith("--") || i + 1 == argv.length) {
          System.err.print(USAGE);
          System.exit(argv[i].equals("--help") ? 0 : 2);
        }
        args.put(argv[i].substring(2), argv[++i]);
      }
    }

    String get(String name, String fallback) {
      String v = args.get(name);
      if (v == null) {
        v = System.getenv("KSTREAMS_" + name.toUpperCase().replace('-', '_'));
      }
      return v == null ? fallback : v;
    }
  }
}
