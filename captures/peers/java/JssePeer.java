// JssePeer: a Java JSSE (SunJSSE) client or server for captures/generate.sh.
//
//   java -cp DIR JssePeer server IP PORT 1.2|1.3 KEYSTORE TRUSTSTORE none|request|require
//   java -cp DIR JssePeer client IP PORT 1.2|1.3 KEYSTORE|- TRUSTSTORE SNI
//
// Keystores are PKCS12 made by keytool (password "changeit"). Library defaults except what a
// scenario sets: one protocol version, the keys, and setWantClientAuth / setNeedClientAuth.
// The server accepts one connection, reads one request, answers "HTTP/1.0 200 ok" and closes;
// the client sends "GET / HTTP/1.0" and reads until the server closes. Each side prints one
// "handshake ok" line.
import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.*;

public class JssePeer {
    static final char[] PASS = "changeit".toCharArray();

    static SSLContext context(String keystore, String truststore) throws Exception {
        KeyManager[] kms = null;
        if (!keystore.equals("-")) {
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(keystore)) { ks.load(in, PASS); }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, PASS);
            kms = kmf.getKeyManagers();
        }
        KeyStore ts = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(truststore)) { ts.load(in, PASS); }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ts);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kms, tmf.getTrustManagers(), null);
        return ctx;
    }

    static String summary(SSLSession s, String peer) {
        String cert = "none";
        try {
            X509Certificate c = (X509Certificate) s.getPeerCertificates()[0];
            cert = c.getSubjectX500Principal().getName();
        } catch (SSLPeerUnverifiedException e) {
            // no certificate from the peer
        }
        return "handshake ok version=" + s.getProtocol() + " suite=" + s.getCipherSuite() + " " + peer + "=" + cert;
    }

    public static void main(String[] a) throws Exception {
        String role = a[0], ip = a[1];
        int port = Integer.parseInt(a[2]);
        String[] protocols = { a[3].equals("1.3") ? "TLSv1.3" : "TLSv1.2" };
        SSLContext ctx = context(a[4], a[5]);
        if (role.equals("server")) {
            SSLServerSocket ss = (SSLServerSocket) ctx.getServerSocketFactory()
                    .createServerSocket(port, 1, InetAddress.getByName(ip));
            ss.setEnabledProtocols(protocols);
            switch (a[6]) {
                case "none": break;
                case "request": ss.setWantClientAuth(true); break;
                case "require": ss.setNeedClientAuth(true); break;
                default: throw new IllegalArgumentException(a[6]);
            }
            System.out.println("listening");
            System.out.flush();
            try (SSLSocket s = (SSLSocket) ss.accept()) {
                s.startHandshake();
                System.out.println(summary(s.getSession(), "client_cert"));
                System.out.flush();
                BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.ISO_8859_1));
                String line;
                while ((line = r.readLine()) != null && !line.isEmpty()) { }
                OutputStream out = s.getOutputStream();
                out.write("HTTP/1.0 200 ok\r\nContent-Type: text/plain\r\n\r\nhello from the capture peer\n"
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
            }
            ss.close();
            return;
        }
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(ip, port);
        s.setEnabledProtocols(protocols);
        SSLParameters p = s.getSSLParameters();
        p.setServerNames(List.of(new SNIHostName(a[6])));
        p.setEndpointIdentificationAlgorithm("HTTPS");
        s.setSSLParameters(p);
        s.startHandshake();
        System.out.println(summary(s.getSession(), "server_cert"));
        s.getOutputStream().write("GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
        byte[] resp = s.getInputStream().readAllBytes();
        String text = new String(resp, StandardCharsets.ISO_8859_1);
        System.out.println(text.split("\r\n", 2)[0]);
        s.close();
    }
}
