package demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.ZoneId;
import java.util.HexFormat;

/** A small HTTP service on the JDK's built-in server: text, JSON, hashing, time zones. */
public final class App {
    private App() {}

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", App::root);
        server.createContext("/info", App::info);
        server.createContext("/hash", App::hash);
        server.start();
        System.out.println("listening on " + port);
    }

    private static void root(HttpExchange exchange) throws IOException {
        if (!exchange.getRequestURI().getPath().equals("/")) {
            send(exchange, 404, "text/plain; charset=utf-8", "not found\n");
            return;
        }
        send(exchange, 200, "text/plain; charset=utf-8", "hello from java\n");
    }

    private static void info(HttpExchange exchange) throws IOException {
        String paris = Instant.parse("2025-06-01T12:00:00Z").atZone(ZoneId.of("Europe/Paris")).toString();
        String body = String.format(
                "{\"feature\": %d, \"vendor_vm\": \"%s\", \"paris\": \"%s\", \"charset\": \"%s\"}",
                Runtime.version().feature(),
                System.getProperty("java.vm.name").replace("\"", ""),
                paris,
                java.nio.charset.Charset.defaultCharset());
        send(exchange, 200, "application/json", body);
    }

    private static void hash(HttpExchange exchange) throws IOException {
        String query = exchange.getRequestURI().getQuery();
        String text = query == null ? "" : query;
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
            send(exchange, 200, "text/plain; charset=utf-8", HexFormat.of().formatHex(digest) + "\n");
        } catch (NoSuchAlgorithmException e) {
            send(exchange, 500, "text/plain; charset=utf-8", e.getMessage());
        }
    }

    private static void send(HttpExchange exchange, int status, String type, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }
}
