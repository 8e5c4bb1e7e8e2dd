"""Deployment files, checked without a cluster: there is no Kubernetes, kubectl or docker on
the machines this runs on, so the manifests are not applied and the image is not built here.
What can be checked is:

- every deploy/kubernetes/*.yaml parses (python3-yaml) and the objects fit together: the
  meshd StatefulSet probes /healthz and /readyz over HTTPS on a port the container declares,
  mounts its PVC at the configured data_dir and the KEK, admin token and TLS Secrets as files
  where its meshd.conf reads them, runs non-root with a read-only root file system; the
  ConfigMap's meshd.conf loads with `meshd --check-config`; Services select the pods and
  name their ports; the NATS StatefulSet has 3 replicas, one route per replica, a PDB, and
  its configuration passes `nats-server -t` (with a test certificate; Debian's 2.9.10 lacks
  sync_interval, which is dropped for the check);
- the Dockerfile is multi-stage from debian:12, installs what setup.sh says, runs non-root,
  has a HEALTHCHECK, and its runtime stage installs the Debian package of every library
  meshd and meshctl link directly;
- the config files shipped in deploy/ load with `meshd --check-config`;
- the Prometheus alert rules (deploy/prometheus/) parse, use only metrics meshd exports, and
  each has its entry in docs/operations.md.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:  # scripts/setup.sh installs python3-yaml
    print("SKIP: python3-yaml is not installed (scripts/setup.sh installs it)")
    sys.exit(77)

BUILD = os.environ.get("MESH_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "build", "debug")
SRC = os.environ.get("MESH_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
MESHD = os.path.join(BUILD, "meshd")
K8S = os.path.join(SRC, "deploy", "kubernetes")


def load_all():
    objs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue  # checked apart: not a Kubernetes object
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    objs.append((os.path.basename(path), doc))
    return objs


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def conf_lines(text):
    out = {}
    for ln in text.splitlines():
        ln = ln.split("#", 1)[0].strip()
        if "=" in ln:
            k, v = ln.split("=", 1)
            out[k.strip()] = v.strip()
    return out


class DeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        print("note: no Kubernetes cluster, kubectl or docker here: the manifests and the "
              "Dockerfile are checked statically, not applied or built")
        cls.objs = load_all()
        cls.by = {}
        for name, o in cls.objs:
            cls.by[(o["kind"], o["metadata"]["name"])] = o

    def get(self, kind, name):
        o = self.by.get((kind, name))
        self.assertIsNotNone(o, "no %s %s" % (kind, name))
        return o

    def check_config(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([MESHD, "--config", f.name, "--check-config"],
                               capture_output=True, text=True)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_every_manifest_parses(self):
        self.assertGreaterEqual(len(self.objs), 10)
        for name, o in self.objs:
            for k in ("apiVersion", "kind", "metadata"):
                self.assertIn(k, o, name)
        kust = yaml.safe_load(read(K8S, "kustomization.yaml"))
        for r in kust["resources"]:
            self.assertTrue(os.path.exists(os.path.join(K8S, r)), r)
        self.assertNotIn("secrets.example.yaml", kust["resources"])

    def test_meshd_statefulset(self):
        ss = self.get("StatefulSet", "meshd")
        pod = ss["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports.get("https"), 7070)
        probes = {k: c[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
        self.assertEqual(probes["livenessProbe"]["path"], "/healthz")
        self.assertEqual(probes["readinessProbe"]["path"], "/readyz")
        for k, p in probes.items():
            self.assertEqual(p["scheme"], "HTTPS", k)
            self.assertIn(p["port"], ports, k)
        # security
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        self.assertFalse(pod["automountServiceAccountToken"])
        sc = c["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        # the image's user is the pod's
        docker = read(SRC, "Dockerfile")
        uid = re.search(r"^USER (\d+)", docker, re.M).group(1)
        self.assertEqual(int(uid), pod["securityContext"]["runAsUser"])
        # every mount has a volume or a claim template; secrets are files, never env
        vols = {v["name"]: v for v in pod["volumes"]}
        claims = {t["metadata"]["name"] for t in ss["spec"]["volumeClaimTemplates"]}
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        for name in mounts:
            self.assertTrue(name in vols or name in claims, name)
        for e in c.get("env", []):
            self.assertNotIn("secretKeyRef", e.get("valueFrom", {}), e["name"])
        # meshd.conf reads what is mounted
        conf_text = self.get("ConfigMap", "meshd-config")["data"]["meshd.conf"]
        self.assertEqual(vols["config"]["configMap"]["name"], "meshd-config")
        self.assertEqual(mounts["config"], "/etc/meshd")
        conf = conf_lines(conf_text)
        self.assertIn("data", claims)
        self.assertEqual(conf["data_dir"], mounts["data"])
        self.assertTrue(conf["listen"].endswith(":%d" % ports["https"]))
        for opt, vol, secret in (("kek_file", "kek", "meshd-kek"),
                                 ("admin_token_file", "admin", "meshd-admin-token"),
                                 ("tls_cert", "tls", "meshd-tls"), ("tls_key", "tls", "meshd-tls")):
            self.assertEqual(vols[vol]["secret"]["secretName"], secret)
            self.assertTrue(conf[opt].startswith(mounts[vol] + "/"), opt)
            leaf = conf[opt][len(mounts[vol]) + 1:]
            items = vols[vol]["secret"].get("items")
            if items:
                self.assertIn(leaf, [i["path"] for i in items], opt)
        # the mesh: the NATS Service's client port, its CA and meshd's password as files
        m = re.match(r"tls://([a-z-]+):(\d+)$", conf["mesh"])
        self.assertIsNotNone(m, conf["mesh"])
        nats_svc = self.get("Service", m.group(1))
        self.assertIn(int(m.group(2)), [p["port"] for p in nats_svc["spec"]["ports"]])
        for opt, vol, secret, key in (("mesh_tls_ca", "nats-ca", "nats-tls", "ca.crt"),
                                      ("mesh_password_file", "nats-password", "nats-auth",
                                       "MESH_NATS_PASSWORD")):
            self.assertEqual(vols[vol]["secret"]["secretName"], secret)
            leaf = conf[opt][len(mounts[vol]) + 1:]
            self.assertTrue(conf[opt].startswith(mounts[vol] + "/"), opt)
            self.assertIn({"key": key, "path": leaf}, vols[vol]["secret"]["items"])
        nats_conf = self.get("ConfigMap", "nats-config")["data"]["nats.conf"]
        self.assertIn("user: %s," % conf["mesh_user"], nats_conf)
        out = self.check_config(conf_text)
        self.assertIn("kek_file = /run/secrets/meshd-kek/kek", out)
        # the example Secrets have the keys the volumes take
        for vol in ("kek", "admin"):
            s = self.get("Secret", vols[vol]["secret"]["secretName"])
            for i in vols[vol]["secret"]["items"]:
                self.assertIn(i["key"], s["stringData"])

    def test_services_select_pods(self):
        for svc in ("meshd", "meshd-headless", "nats", "nats-headless"):
            s = self.get("Service", svc)
            app = s["spec"]["selector"]["app.kubernetes.io/name"]
            ss = self.get("StatefulSet", app)
            self.assertEqual(ss["spec"]["template"]["metadata"]["labels"]
                             ["app.kubernetes.io/name"], app)
            names = {p["name"] for p in ss["spec"]["template"]["spec"]["containers"][0]["ports"]}
            for p in s["spec"]["ports"]:
                self.assertIn(p["targetPort"], names, svc)
        self.assertEqual(self.get("StatefulSet", "meshd")["spec"]["serviceName"],
                         "meshd-headless")

    def test_nats_cluster(self):
        ss = self.get("StatefulSet", "nats")
        n = ss["spec"]["replicas"]
        self.assertEqual(n, 3)
        self.assertTrue(ss["spec"]["volumeClaimTemplates"])
        self.get("PodDisruptionBudget", "nats")
        conf = self.get("ConfigMap", "nats-config")["data"]["nats.conf"]
        routes = re.findall(r"nats://([a-z0-9-]+)\.([a-z-]+):6222", conf)
        self.assertEqual(routes, [("nats-%d" % i, ss["spec"]["serviceName"]) for i in range(n)])
        self.assertIn("sync_interval: always", conf)
        self.assertIn("system_account: SYS", conf)
        c = ss["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"] for e in c["env"]}
        for var in set(re.findall(r"\$([A-Z_]+)", conf)):
            self.assertIn(var, env, "nats.conf uses $%s" % var)
        if shutil.which("nats-server") is None or shutil.which("openssl") is None:
            print("note: no nats-server or openssl here: nats.conf not tested by nats-server")
            return
        tmp = tempfile.mkdtemp(prefix="meshd-deploy-")
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=nats", "-keyout", tmp + "/tls.key", "-out", tmp + "/tls.crt"],
                           check=True, capture_output=True)
            shutil.copy(tmp + "/tls.crt", tmp + "/ca.crt")
            text = conf.replace("/etc/nats-tls", tmp).replace("/var/run/nats", tmp)
            text = text.replace("store_dir: /data", "store_dir: " + tmp + "/js")
            # Debian's nats-server 2.9.10 predates sync_interval (2.10.0)
            text = "\n".join(ln for ln in text.splitlines() if "sync_interval" not in ln)
            with open(tmp + "/nats.conf", "w") as f:
                f.write(text)
            e = dict(os.environ, POD_NAME="nats-0", MESH_NATS_PASSWORD="x" * 24,
                     SYS_NATS_PASSWORD="y" * 24)
            r = subprocess.run(["nats-server", "-t", "-c", tmp + "/nats.conf"], env=e,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_dockerfile(self):
        text = read(SRC, "Dockerfile")
        froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.M)
        self.assertGreaterEqual(len(froms), 2, "multi-stage")
        self.assertEqual(froms[0][0], "debian:12")
        self.assertTrue(froms[-1][0].startswith("debian:12"))
        self.assertIn("scripts/setup.sh", text)
        user = re.findall(r"^USER (\S+)", text, re.M)
        self.assertTrue(user and not user[-1].startswith("0") and user[-1] != "root")
        self.assertRegex(text, r"(?m)^HEALTHCHECK .*\n?.*/healthz")
        self.assertTrue(os.path.exists(os.path.join(SRC, ".dockerignore")))
        # the runtime stage installs the package of every library the programs link directly
        runtime = text[text.rindex("\nFROM "):]
        checked = set()
        for prog in ("meshd", "meshctl"):
            r = subprocess.run(["objdump", "-p", os.path.join(BUILD, prog)], capture_output=True,
                               text=True, check=True)
            for lib in re.findall(r"NEEDED\s+(\S+)", r.stdout):
                if re.match(r"lib(c|m|pthread|dl|rt|asan|ubsan|gcc_s)\.so", lib):
                    continue
                path = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True,
                                      text=True).stdout
                m = re.search(r"\s%s \(libc6,x86-64\) => (\S+)" % re.escape(lib), path)
                if not m:
                    continue
                pkg = subprocess.run(["dpkg", "-S", os.path.realpath(m.group(1))],
                                     capture_output=True, text=True).stdout.split(":")[0]
                if pkg:
                    self.assertIn(pkg, runtime, "%s (%s, linked by %s)" % (pkg, lib, prog))
                    checked.add(pkg)
        self.assertIn("libsqlite3-0", checked)
        print("runtime packages checked against the programs' libraries: %s" %
              " ".join(sorted(checked)))
        self.check_config(read(SRC, "deploy", "docker", "meshd.conf"))

    def test_alert_rules(self):
        """Every alert uses metrics meshd exports and has its entry in docs/operations.md."""
        rules = yaml.safe_load(read(SRC, "deploy", "prometheus", "meshd-alerts.yaml"))
        exported = set()
        for path in glob.glob(os.path.join(SRC, "src", "*", "*.c")):
            exported |= set(re.findall(r'"(meshd_[a-z_]+)', read(path)))
        self.assertIn("meshd_disk_free_bytes", exported)
        ops = read(SRC, "docs", "operations.md")
        headings = set(re.findall(r"(?m)^### (\S+)$", ops))
        alerts = [r for g in rules["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(alerts), 10)
        for r in alerts:
            for m in re.findall(r"\b(meshd_[a-z_]+)", r["expr"]):
                m = re.sub(r"_(bucket|sum|count)$", "", m) if m not in exported else m
                self.assertIn(m, exported, "%s uses %s, which meshd does not export" %
                              (r["alert"], m))
            self.assertIn(r["alert"], headings, "docs/operations.md has no ### " + r["alert"])
            self.assertEqual(r["annotations"]["runbook"],
                             "docs/operations.md#" + r["alert"].lower())
            self.assertIn(r["labels"]["severity"], ("critical", "warning", "info"))

    def test_packaged_configs_load(self):
        self.check_config(read(SRC, "deploy", "debian", "meshd.conf"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
