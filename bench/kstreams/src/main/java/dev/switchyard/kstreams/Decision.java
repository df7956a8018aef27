package dev.switchyard.kstreams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.UUID;

/**
 * The payment plugin's booking decision (plugins/payment, vocabulary {@code booking}) and the
 * envelope the router wraps its emit in (host/src/router/emit.rs, host/src/envelope/encode.rs),
 * written natively, with no I/O: one catalog-000 {@code booking.booking.created} in, one
 * {@code payment.payment.succeeded} or {@code payment.payment.failed} out.
 *
 * <p>The ids are derived exactly as the plugin and the router derive them (name-based v5 UUIDs),
 * so the output equals the router's for the same input, byte for byte in content; only the JSON
 * field order and number spelling may differ.
 */
public final class Decision {
  /** The namespace of every id the router derives (host/src/envelope/mod.rs). */
  static final UUID ID_NAMESPACE = UUID.fromString("5b1f1c3e-7a0d-4e62-9f3b-2d4c8e9a0c11");

  /** RFC 4122's URL namespace, under which the plugin SDK's {@code derive_id} names its own. */
  static final UUID NAMESPACE_URL = UUID.fromString("6ba7b811-9dad-11d1-80b4-00c04fd430c8");

  /** The event type the decision handles. */
  public static final String INPUT_TYPE = "booking.booking.created";

  /** The approval's event type. */
  public static final String SUCCEEDED = "payment.payment.succeeded";

  /** The decline's event type. */
  public static final String FAILED = "payment.payment.failed";

  /** The time of an envelope that has none: the epoch, never the wall clock. */
  static final String EPOCH = "1970-01-01T00:00:00Z";

  private static final ObjectMapper JSON = new ObjectMapper();

  /** The namespace of payment ids: the SDK's {@code derive_id("payment", ..)}. */
  private static final UUID PAYMENT_NAMESPACE =
      v5(NAMESPACE_URL, "switchyard:payment".getBytes(StandardCharsets.UTF_8));

  /** The plugin's config: the same keys and defaults as plugins/payment's {@code Config}. */
  public record Config(
      String plugin,
      String source,
      String provider,
      List<String> declineCards,
      String defaultCard,
      Double maxAmount,
      List<String> currencies) {}

  /** One decision: the input's event id, and the output's event type, key and value. */
  public record Output(String inputId, String type, String key, byte[] value) {}

  /** Why an input is not decided: the router would skip or dead-letter it. */
  public static final class Skip extends Exception {
    private static final long serialVersionUID = 1L;

    /** {@code why}: the reason, as a log line would say it. */
    Skip(String why) {
      super(why, null, false, false);
    }
  }

  private Decision() {}

  /**
   * Decides one input record's value read from {@code topic}, with the hop count of its
   * {@code switchyard-hop} header.
   *
   * @throws Skip when the record is not a snake_case {@code booking.booking.created} the plugin
   *     can read (not JSON, another type or envelope, or data the plugin rejects)
   */
  public static Output decide(Config config, String topic, byte[] value) throws Skip {
    JsonNode envelope;
    try {
      envelope = JSON.readTree(value);
    } catch (java.io.IOException e) {
      throw new Skip("not JSON: " + e.getMessage());
    }
    if (envelope == null || !envelope.isObject()) {
      throw new Skip("not a JSON object");
    }
    if (envelope.has("specversion") || !envelope.has("event_type")) {
      throw new Skip("not a snake_case envelope");
    }
    String type = text(envelope, "event_type");
    if (!INPUT_TYPE.equals(type)) {
      throw new Skip("event type " + type + " is not " + INPUT_TYPE);
    }
    String id = text(envelope, "event_id");
    if (id == null || id.isEmpty()) {
      id = contentId(topic, value);
    }
    String time = text(envelope, "timestamp");
    if (time == null || time.isEmpty()) {
      time = EPOCH;
    }
    String correlation = text(envelope, "correlation_id");
    if (correlation == null) {
      correlation = id;
    }

    // The plugin's `Created`: strings and a number where serde wants them.
    JsonNode data = envelope.get("data");
    if (data == null || !data.isObject()) {
      throw new Skip("data is not an object");
    }
    String bookingId = string(data, "booking_id");
    String userId = string(data, "user_id");
    JsonNode amountNode = data.get("price_amount");
    if (amountNode == null || !amountNode.isNumber() || !Double.isFinite(amountNode.asDouble())) {
      throw new Skip("price_amount is not a number");
    }
    double amount = amountNode.asDouble();
    String currency = string(data, "price_currency");
    JsonNode metadata = data.get("metadata");
    if (metadata != null && !metadata.isNull() && !metadata.isObject()) {
      throw new Skip("metadata is not an object");
    }
    String card = config.defaultCard();
    if (metadata != null && metadata.isObject()) {
      JsonNode c = metadata.get("card_number");
      if (c != null && c.isTextual()) {
        card = c.asText();
      }
    }

    String paymentId = v5(PAYMENT_NAMESPACE, bookingId.getBytes(StandardCharsets.UTF_8)).toString();
    ObjectNode out = JSON.createObjectNode();
    out.put("payment_id", paymentId);
    out.put("booking_id", bookingId);
    out.put("user_id", userId);
    out.put("amount", amount);
    out.put("currency", currency);
    out.put("provider", config.provider());
    String decline = rules(config, amount, currency, card);
    String emitType;
    if (decline == null) {
      emitType = SUCCEEDED;
      out.put("provider_payment_id", "pi_" + paymentId.replace("-", "").substring(0, 24));
      ObjectNode method = out.putObject("payment_method");
      method.put("type", "card");
      method.put("brand", brand(card));
      method.put("last4", card.substring(card.length() - 4));
      out.put("succeeded_at", time);
    } else {
      emitType = FAILED;
      int tab = decline.indexOf('\t');
      out.put("error_code", decline.substring(0, tab));
      out.put("error_message", decline.substring(tab + 1));
      out.put("failed_at", time);
    }

    // The router's snake_case envelope around the emit (index 0 of this plugin's emits).
    ObjectNode wrapped = JSON.createObjectNode();
    String emitId =
        v5(ID_NAMESPACE, (id + "/" + config.plugin() + "/0").getBytes(StandardCharsets.UTF_8))
            .toString();
    wrapped.put("event_id", emitId);
    wrapped.put("event_type", emitType);
    wrapped.put("event_version", "1.0");
    wrapped.put("timestamp", time);
    wrapped.put("correlation_id", correlation);
    wrapped.put("causation_id", id);
    wrapped.set("data", out);
    wrapped.putObject("metadata").put("source", config.source());
    try {
      return new Output(id, emitType, paymentId, JSON.writeValueAsBytes(wrapped));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * The decline rules (plugins/payment/src/rules.rs), in their order: {@code null} when the
   * charge is approved, else the code and the message separated by a tab.
   */
  static String rules(Config config, double amount, String currency, String card) {
    if (!Double.isFinite(amount) || amount <= 0.0) {
      return "invalid_amount\tAmount " + rustDisplay(amount) + " is not a positive number";
    }
    boolean supported = false;
    for (String c : config.currencies()) {
      supported |= asciiEqualsIgnoreCase(c, currency);
    }
    if (!supported) {
      return "currency_not_supported\tCurrency " + currency + " is not supported";
    }
    boolean digits = card.length() >= 12 && card.length() <= 19;
    for (int i = 0; digits && i < card.length(); i++) {
      digits = card.charAt(i) >= '0' && card.charAt(i) <= '9';
    }
    if (!digits) {
      return "invalid_card_number\tYour card number is invalid";
    }
    if (config.declineCards().contains(card)) {
      return "card_declined\tYour card was declined";
    }
    Double max = config.maxAmount();
    if (max != null && amount > max) {
      String limit = new BigDecimal(max).setScale(2, RoundingMode.HALF_EVEN).toPlainString();
      return "amount_too_large\tAmount exceeds the limit of " + limit + " " + currency;
    }
    return null;
  }

  /** The card's brand, from its first digit. */
  static String brand(String card) {
    return switch (card.charAt(0)) {
      case '4' -> "visa";
      case '5', '2' -> "mastercard";
      case '3' -> "amex";
      case '6' -> "discover";
      default -> "unknown";
    };
  }

  /** A double as Rust's {@code Display} writes it: shortest digits, no exponent, no ".0". */
  static String rustDisplay(double x) {
    if (x == 0.0) {
      return (1.0 / x < 0) ? "-0" : "0";
    }
    return new BigDecimal(Double.toString(x)).stripTrailingZeros().toPlainString();
  }

  /** Rust's {@code eq_ignore_ascii_case}. */
  static boolean asciiEqualsIgnoreCase(String a, String b) {
    if (a.length() != b.length()) {
      return false;
    }
    for (int i = 0; i < a.length(); i++) {
      char x = a.charAt(i);
      char y = b.charAt(i);
      if (x >= 'A' && x <= 'Z') {
        x += 'a' - 'A';
      }
      if (y >= 'A' && y <= 'Z') {
        y += 'a' - 'A';
      }
      if (x != y) {
        return false;
      }
    }
    return true;
  }

  /** An envelope field as the router reads it: text as is, other JSON as its text, null absent. */
  private static String text(JsonNode obj, String key) {
    JsonNode v = obj.get(key);
    if (v == null || v.isNull()) {
      return null;
    }
    return v.isTextual() ? v.asText() : v.toString();
  }

  /** A required string field of the plugin's data. */
  private static String string(JsonNode obj, String key) throws Skip {
    JsonNode v = obj.get(key);
    if (v == null || !v.isTextual()) {
      throw new Skip("data." + key + " is not a string");
    }
    return v.asText();
  }

  /** The id of an envelope without one: the router's v5 UUID of topic, NUL and value. */
  private static String contentId(String topic, byte[] value) {
    byte[] t = topic.getBytes(StandardCharsets.UTF_8);
    byte[] name = ByteBuffer.allocate(t.length + 1 + value.length).put(t).put((byte) 0).put(value).array();
    return v5(ID_NAMESPACE, name).toString();
  }

  /** A name-based (version 5, SHA-1) UUID of {@code name} in {@code namespace}. */
  static UUID v5(UUID namespace, byte[] name) {
    MessageDigest sha1;
    try {
      sha1 = MessageDigest.getInstance("SHA-1");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    ByteBuffer ns = ByteBuffer.allocate(16);
    ns.putLong(namespace.getMostSignificantBits()).putLong(namespace.getLeastSignificantBits());
    sha1.update(ns.array());
    sha1.update(name);
    byte[] h = sha1.digest();
    h[6] = (byte) ((h[6] & 0x0f) | 0x50);
    h[8] = (byte) ((h[8] & 0x3f) | 0x80);
    ByteBuffer b = ByteBuffer.wrap(h, 0, 16);
    return new UUID(b.getLong(), b.getLong());
  }
}
