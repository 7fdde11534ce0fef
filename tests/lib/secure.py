"""Production transport for the Python tests (issue 28): the harness's SASL_SSL broker
(harness/kafka-secure.sh), principals with exactly the ACLs `acls` prints for them, and an HTTPS
front with a CA of its own for a Directus instance (harness/tls-front.mjs).

    ks = SecureKafka()                       # started now, stopped when the test ends
    ks.admin(["user prod-a <pw>", *acl_lines])   # one JVM: users, topics, ACLs
    dx.KCAT = ks.kcat()                      # the test's own reads, as admin
    url, ca = https_front("c", inst("c")["url"])
"""
import atexit, os, secrets, subprocess

import dx

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness")
KS = os.path.join(HARNESS, "kafka-secure.sh")


def password():
    return secrets.token_urlsafe(18)


class SecureKafka:
    def __init__(self):
        out = subprocess.run([KS, "start"], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"kafka-secure.sh start failed: {out.stderr[-2000:]}")
        atexit.register(lambda: subprocess.run([KS, "stop"], capture_output=True))
        self.env = dict(l.split("=", 1) for l in out.stdout.splitlines() if "=" in l)
        self.brokers, self.ca = self.env["KSEC_BROKERS"], self.env["KSEC_CA"]

    def admin(self, lines):
        """Runs the lines (what `acls` prints, its commented kafka-topics.sh lines made real by
        the caller, and "user NAME PASSWORD") as the admin, in one JVM; returns its summary line."""
        r = subprocess.run([KS, "batch"], input="\n".join(lines) + "\n", capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kafka-secure.sh batch failed: {r.stderr[-2000:]}")
        return r.stdout.strip()

    def properties(self):
        """kafka.properties for a dxsync client; its principal comes from ${KS_USER} and
        ${KS_PASSWORD} in the process's environment."""
        return {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "${KS_USER}", "sasl.password": "${KS_PASSWORD}",
                "ssl.ca.location": self.ca}

    def kcat(self):
        """kcat's arguments for reading as the admin."""
        return ["kcat", "-b", self.brokers, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
                "-X", "sasl.username=" + self.env["KSEC_ADMIN_USER"],
                "-X", "sasl.password=" + self.env["KSEC_ADMIN_PASSWORD"], "-X", "ssl.ca.location=" + self.ca]


def acl_lines(text):
    """The lines of an `acls` output to run: its kafka-acls.sh lines and the kafka-topics.sh
    lines it prints as comments (the topics to create beforehand: no Create ACL is granted)."""
    out = []
    for l in text.splitlines():
        if l.startswith("kafka-acls.sh "):
            out.append(l)
        elif l.startswith("#   kafka-topics.sh "):
            out.append(l[4:])
    return out


def https_front(name, upstream):
    """Starts harness/tls-front.mjs before upstream with a certificate for 127.0.0.1 from a CA
    made here; returns (https URL, CA file)."""
    d = os.path.join(dx.TMP, f"tls-{name}")
    os.makedirs(d, exist_ok=True)
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=dxsync test {name} CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/srv.key", "-out", f"{d}/srv.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", f"{d}/ext", "-out", f"{d}/srv.pem")
    port = dx.free_port()
    dx.start(f"tls-front-{name}", "node", os.path.join(HARNESS, "tls-front.mjs"), str(port), upstream,
             f"{d}/srv.pem", f"{d}/srv.key")
    url = f"https://127.0.0.1:{port}"
    ok = dx.wait_for(lambda: subprocess.run(["curl", "-fsS", "-o", "/dev/null", "--cacert", f"{d}/ca.pem",
                                             url + "/server/ping"], capture_output=True).returncode == 0, 20)
    if not ok:
        raise RuntimeError(f"the HTTPS front of {name} does not answer on {url}: {dx.log_of('tls-front-' + name)[-500:]}")
    return url, f"{d}/ca.pem"
