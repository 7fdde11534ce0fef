// The admin's changes to the secure test broker in one JVM (kafka-secure.sh batch): Kafka's own
// tools start a JVM per ACL, topic or user, which for a mesh of three instances is a minute of
// CPU. Reads, from stdin, the very lines `dxsync-* acls` prints, plus users:
//
//   kafka-acls.sh ... --add --allow-principal User:x --operation Read [--operation ...]
//       (--topic T | --group G | --cluster | --transactional-id I)... [--resource-pattern-type prefixed]
//   kafka-topics.sh ... --create --topic T [--partitions N] [--replication-factor R] [--config k=v]...
//   user NAME PASSWORD        (SCRAM-SHA-512 credentials, 4096 iterations)
//
// Blank lines and lines starting with '#' are skipped; any other line is an error naming it, so
// that a test never grants less than it meant to. A topic that exists already is fine. Prints
// what it did: "users N, topics N (M existed), acls N".
//
//   java -cp <kafka libs> KafkaAdminBatch.java BOOTSTRAP ADMIN_PROPERTIES < lines
import java.io.BufferedReader;
import java.io.FileReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaAdminBatch {
  static String line;

  static RuntimeException bad(String why) {
    return new IllegalArgumentException(why + " in: " + line);
  }

  static String arg(String[] w, int i) {
    if (i >= w.length) throw bad("option " + w[i - 1] + " without its value");
    return w[i];
  }

  // "IdempotentWrite" -> IDEMPOTENT_WRITE
  static AclOperation operation(String s) {
    AclOperation op;
    try {
      op = AclOperation.valueOf(s.replaceAll("([a-z])([A-Z])", "$1_$2").toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw bad("unknown operation " + s);
    }
    return op;
  }

  static void acl(String[] w, List<AclBinding> out) {
    String principal = null;
    List<AclOperation> ops = new ArrayList<>();
    List<String[]> resources = new ArrayList<>();
    PatternType pattern = PatternType.LITERAL;
    for (int i = 1; i < w.length; i++) {
      switch (w[i]) {
        case "--bootstrap-server", "--command-config" -> i++;
        case "--add" -> {}
        case "--allow-principal" -> principal = arg(w, ++i);
        case "--operation" -> ops.add(operation(arg(w, ++i)));
        case "--topic" -> resources.add(new String[] {"TOPIC", arg(w, ++i)});
        case "--group" -> resources.add(new String[] {"GROUP", arg(w, ++i)});
        case "--transactional-id" -> resources.add(new String[] {"TRANSACTIONAL_ID", arg(w, ++i)});
        case "--cluster" -> resources.add(new String[] {"CLUSTER", "kafka-cluster"});
        case "--resource-pattern-type" -> pattern = PatternType.fromString(arg(w, ++i).toUpperCase(Locale.ROOT));
        default -> throw bad("unknown option " + w[i]);
      }
    }
    if (principal == null || ops.isEmpty() || resources.isEmpty())
      throw bad("an ACL needs --allow-principal, --operation and a resource");
    if (pattern == PatternType.UNKNOWN) throw bad("unknown --resource-pattern-type");
    for (String[] r : resources)
      for (AclOperation op : ops)
        out.add(new AclBinding(new ResourcePattern(ResourceType.valueOf(r[0]), r[1], pattern),
            new AccessControlEntry(principal, "*", op, AclPermissionType.ALLOW)));
  }

  static NewTopic topic(String[] w) {
    String name = null;
    Optional<Integer> partitions = Optional.empty();
    Optional<Short> replicas = Optional.empty();
    Map<String, String> configs = new HashMap<>();
    for (int i = 1; i < w.length; i++) {
      switch (w[i]) {
        case "--bootstrap-server", "--command-config" -> i++;
        case "--create" -> {}
        case "--topic" -> name = arg(w, ++i);
        case "--partitions" -> partitions = Optional.of(Integer.parseInt(arg(w, ++i)));
        case "--replication-factor" -> replicas = Optional.of(Short.parseShort(arg(w, ++i)));
        case "--config" -> {
          String kv = arg(w, ++i);
          int eq = kv.indexOf('=');
          if (eq <= 0) throw bad("--config wants key=value");
          configs.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        default -> throw bad("unknown option " + w[i]);
      }
    }
    if (name == null) throw bad("no --topic");
    return new NewTopic(name, partitions, replicas).configs(configs);
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: KafkaAdminBatch BOOTSTRAP ADMIN_PROPERTIES < lines");
      System.exit(2);
    }
    Properties props = new Properties();
    try (FileReader r = new FileReader(args[1])) {
      props.load(r);
    }
    props.put("bootstrap.servers", args[0]);
    List<AclBinding> acls = new ArrayList<>();
    List<NewTopic> topics = new ArrayList<>();
    List<UserScramCredentialAlteration> users = new ArrayList<>();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    try {
      while ((line = in.readLine()) != null) {
        String t = line.strip();
        if (t.isEmpty() || t.startsWith("#")) continue;
        String[] w = t.split("\\s+");
        switch (w[0]) {
          case "kafka-acls.sh" -> acl(w, acls);
          case "kafka-topics.sh" -> topics.add(topic(w));
          case "user" -> {
            if (w.length != 3) throw bad("user NAME PASSWORD");
            users.add(new UserScramCredentialUpsertion(
                w[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), w[2]));
          }
          default -> throw bad("not an ACL, topic or user line");
        }
      }
    } catch (IllegalArgumentException e) {
      System.err.println("KafkaAdminBatch: " + e.getMessage());
      System.exit(2);
    }
    int existed = 0;
    try (Admin admin = Admin.create(props)) {
      if (!users.isEmpty()) admin.alterUserScramCredentials(users).all().get();
      if (!topics.isEmpty()) {
        var created = admin.createTopics(topics).values();
        for (var e : created.entrySet()) {
          try {
            e.getValue().get();
          } catch (ExecutionException x) {
            if (!(x.getCause() instanceof TopicExistsException)) throw x;
            existed++;
          }
        }
      }
      if (!acls.isEmpty()) admin.createAcls(acls).all().get();
      // The controller has committed them; the broker applies them from the metadata log a
      // moment later. A client started right after this returns must find them: wait until
      // the broker (the one node, which answers these) shows every one.
      long deadline = System.currentTimeMillis() + 30000;
      for (;;) {
        boolean seen = true;
        if (!acls.isEmpty())
          seen = admin.describeAcls(AclBindingFilter.ANY).values().get().containsAll(acls);
        if (seen && !topics.isEmpty()) {
          try {
            admin.describeTopics(topics.stream().map(NewTopic::name).toList()).allTopicNames().get();
          } catch (ExecutionException x) {
            seen = false;
          }
        }
        if (seen && !users.isEmpty()) {
          try {
            seen = admin.describeUserScramCredentials(users.stream().map(UserScramCredentialAlteration::user).toList())
                       .all().get().size() == users.size();
          } catch (ExecutionException x) {
            seen = false;
          }
        }
        if (seen) break;
        if (System.currentTimeMillis() > deadline) {
          System.err.println("KafkaAdminBatch: the broker does not show everything made after 30 s");
          System.exit(1);
        }
        Thread.sleep(50);
      }
    }
    System.out.printf("users %d, topics %d (%d existed), acls %d%n", users.size(), topics.size(), existed, acls.size());
  }
}
