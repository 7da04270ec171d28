#!/usr/bin/python3
"""Checks the deployment recipes under deploy/ without a cluster.

- every Kubernetes YAML parses, and the fields that matter hold: one server
  replica with its database on a volume; the replicated variant's several
  replicas pointing at members of an etcd StatefulSet of the manifests (odd
  count, started in parallel, --initial-cluster naming them, a headless
  Service publishing not-ready members, data on a volume); grpc.health.v1 probes on the port
  it serves, resources, a listen address reachable in a pod, a headless
  Service, a Service port named "grpclb", Service selectors that select
  something, a backend with a preStop drain, clients dialing Services that
  exist, and every LOOKASIDE_* variable and --flag naming a real flag of the
  binary it configures (asked from the built binaries' --help);
- the Dockerfile is multi-stage on Debian 12 slim, installs runtime
  libraries only in its last stage (covering every library the server
  links), and runs as a non-root user;
- the systemd unit is Type=notify with StateDirectory= and hardening, and
  `systemd-analyze verify` accepts it (pointed at the built binary).

usage: check_deploy.py REPO_ROOT SERVER_BIN BACKEND_BIN CLIENT_BIN CTL_BIN
Exit 0 when everything holds, 1 otherwise (every failure is printed);
77 when python3-yaml is missing (scripts/deps.sh installs it).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (scripts/deps.sh installs it)")
    sys.exit(77)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def help_flags(binary):
    """The --long-flags a binary's --help lists."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"--([a-z][a-z0-9-]*)", out.stdout + out.stderr))


def load_manifests(root):
    docs = []
    files = sorted(glob.glob(os.path.join(root, "deploy", "**", "*.yaml"), recursive=True))
    check(files, "no YAML files under deploy/")
    for f in files:
        try:
            with open(f) as fh:
                for d in yaml.safe_load_all(fh):
                    if d is None:
                        continue
                    ok = check(isinstance(d, dict) and "apiVersion" in d and "kind" in d
                               and d.get("metadata", {}).get("name"),
                               f"{f}: a document without apiVersion/kind/metadata.name")
                    if ok:
                        d["_file"] = os.path.relpath(f, root)
                        docs.append(d)
        except yaml.YAMLError as e:
            check(False, f"{f}: does not parse: {e}")
    return docs


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def pod_labels(w):
    return w["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(c, ref):
    """A Service targetPort (number or name) resolved against a container."""
    for p in c.get("ports", []):
        if ref == p.get("containerPort") or ref == p.get("name"):
            return p["containerPort"]
    return None


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def check_env_flags(where, c, flags):
    for name in env_of(c):
        if name.startswith("LOOKASIDE_"):
            flag = name[len("LOOKASIDE_"):].lower().replace("_", "-")
            check(flag in flags, f"{where}: {name} names no lookaside-server flag (--{flag})")


def check_args_flags(where, c, flags):
    for a in c.get("args", []):
        m = re.match(r"--([a-z][a-z0-9-]*)", str(a))
        if m:
            check(m.group(1) in flags, f"{where}: --{m.group(1)} is not a flag of the program")


def service_hosts(docs):
    """DNS names clients may dial: NAME.NAMESPACE.svc.cluster.local and shorter."""
    hosts = set()
    for d in docs:
        if d["kind"] == "Service":
            n, ns = d["metadata"]["name"], d["metadata"].get("namespace", "default")
            hosts |= {n, f"{n}.{ns}", f"{n}.{ns}.svc", f"{n}.{ns}.svc.cluster.local"}
    return hosts


def target_host(t):
    t = re.sub(r"^dns:(//[^/]*)?/", "", t)
    return t.rsplit(":", 1)[0]


def check_server_container(where, pod, c, server_flags):
    """What every lookaside-server pod needs: non-root, real flags, a listen
    address reachable in the pod with TLS or --insecure, grpc probes on that
    port, resources. Returns the port."""
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
          f"{where}: runAsNonRoot")
    env = env_of(c)
    check_env_flags(where, c, server_flags)
    listen = env.get("LOOKASIDE_LISTEN") or next(
        (a.split("=", 1)[1] for a in c.get("args", []) if str(a).startswith("--listen=")), "")
    check(listen.startswith("0.0.0.0:") or listen.startswith("[::]:"),
          f"{where}: the server must listen on every pod address, not {listen!r}")
    # Beyond loopback, plaintext without --insecure is protected mode: every
    # other pod and the kubelet's probes would be refused.
    insecure = (env.get("LOOKASIDE_INSECURE") or "").lower() not in ("", "0", "false", "no", "off")
    tls = env.get("LOOKASIDE_TLS_CERT") and env.get("LOOKASIDE_TLS_KEY")
    check(insecure or tls, f"{where}: listening beyond loopback needs TLS (LOOKASIDE_TLS_CERT/"
                           f"LOOKASIDE_TLS_KEY) or LOOKASIDE_INSECURE, else every peer is refused")
    port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
    check(any(p.get("containerPort") == port for p in c.get("ports", [])),
          f"{where}: containerPort {port} not declared")
    for probe in ("livenessProbe", "readinessProbe"):
        pr = c.get(probe, {})
        check(pr.get("grpc", {}).get("port") == port,
              f"{where}: {probe} must be a grpc (grpc.health.v1) probe on {port}")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        check("cpu" in res.get(k, {}) and "memory" in res.get(k, {}),
              f"{where}: resources.{k} needs cpu and memory")
    return port


def check_replicated(docs, server_flags):
    """The etcd-mode variant: a Deployment of several replicas, LOOKASIDE_ETCD
    naming members of an etcd StatefulSet of these manifests through its
    headless Service, and a headless Service over the replicas."""
    reps = [w for w in workloads(docs) if w["metadata"]["name"] == "lookaside-server-replicated"]
    if not check(len(reps) == 1, "exactly one lookaside-server-replicated workload"):
        return
    w = reps[0]
    where, spec = w["_file"], w["spec"]
    check(w["kind"] == "Deployment" and spec.get("replicas", 1) >= 2,
          f"{where}: a Deployment of at least 2 replicas")
    check(selects(spec["selector"].get("matchLabels", {}), pod_labels(w)),
          f"{where}: selector does not match the pod template")
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    check_server_container(where, pod, c, server_flags)
    env = env_of(c)
    check(not env.get("LOOKASIDE_DB"), f"{where}: LOOKASIDE_DB is not used in etcd mode")
    endpoints = [e for e in (env.get("LOOKASIDE_ETCD") or "").split(",") if e]
    if not check(endpoints, f"{where}: LOOKASIDE_ETCD names no endpoint"):
        return
    ns_of = lambda d: d["metadata"].get("namespace", "default")
    services = {(ns_of(d), d["metadata"]["name"]): d for d in docs if d["kind"] == "Service"}
    headless = [s for s in services.values() if s["spec"].get("clusterIP") == "None"
                and selects(s["spec"].get("selector"), pod_labels(w))]
    check(headless, f"{where}: no headless Service over the replicas (reporters and clients "
                    f"dial dns:/// names resolving to all of them)")
    sets = {(ns_of(d), d["metadata"]["name"]): d for d in workloads(docs)
            if d["kind"] == "StatefulSet"}
    for ep in endpoints:
        host, _, port = ep.rpartition(":")
        m = re.match(r"^([a-z0-9-]+)-([0-9]+)\.([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$",
                     host)
        if not check(m, f"{where}: etcd endpoint {ep!r} is not POD.SERVICE.NAMESPACE.svc."
                        f"cluster.local:PORT of a StatefulSet member"):
            continue
        ns = m.group(4)
        sts, idx = sets.get((ns, m.group(1))), int(m.group(2))
        svc = services.get((ns, m.group(3)))
        if not check(sts and svc, f"{where}: {ep!r}: no StatefulSet {m.group(1)} with Service "
                                  f"{m.group(3)} in namespace {ns} in these manifests"):
            continue
        check(sts["spec"].get("serviceName") == m.group(3) and idx < sts["spec"].get("replicas", 1)
              and svc["spec"].get("clusterIP") == "None",
              f"{where}: {ep!r} is not a member of StatefulSet {m.group(1)} behind its headless "
              f"Service")
        ec = sts["spec"]["template"]["spec"]["containers"][0]
        check(container_port(ec, int(port)) == int(port)
              and any(p.get("port") == int(port) for p in svc["spec"].get("ports", [])),
              f"{where}: {ep!r}: port {port} is not served by {m.group(1)}")
    named = {(e.split(".")[2], re.sub(r"-[0-9]+$", "", e.split(".")[0]))
             for e in endpoints if e.count(".") >= 3}
    for sts in [m for key, m in sorted(sets.items()) if key in named]:
        n = sts["spec"].get("replicas", 1)
        where = sts["_file"]
        check(n % 2 == 1, f"{where}: an odd number of etcd members (quorum)")
        check(sts["spec"].get("podManagementPolicy") == "Parallel",
              f"{where}: etcd members must start together (podManagementPolicy: Parallel)")
        args = " ".join(str(a) for a in sts["spec"]["template"]["spec"]["containers"][0]
                        .get("command", []) + sts["spec"]["template"]["spec"]["containers"][0]
                        .get("args", []))
        ic = re.search(r"--initial-cluster[= ](\S+)", args)
        if check(ic, f"{where}: etcd needs --initial-cluster"):
            names = sorted(x.split("=", 1)[0] for x in ic.group(1).split(","))
            check(names == sorted(f"{sts['metadata']['name']}-{i}" for i in range(n)),
                  f"{where}: --initial-cluster names {names}, not the {n} members")
        svc = services.get((ns_of(sts), sts["spec"].get("serviceName")), {})
        check(svc.get("spec", {}).get("publishNotReadyAddresses") is True,
              f"{where}: the members' headless Service must publish not-ready addresses "
              f"(members find each other before the cluster has a leader)")
        check(sts["spec"].get("volumeClaimTemplates"), f"{where}: etcd data on a volume")


def check_kubernetes(docs, bins):
    server_flags = help_flags(bins["server"])
    check("listen" in server_flags and "db" in server_flags,
          "lookaside-server --help does not list --listen/--db")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    hosts = service_hosts(docs)
    check_replicated(docs, server_flags)

    # ---- the server
    servers = [w for w in workloads(docs)
               if any("lookaside-server" in str(c.get("image", "")) + str(c.get("command", ""))
                      or c.get("name") == "server"
                      for c in w["spec"]["template"]["spec"]["containers"])
               and w["metadata"]["name"] == "lookaside-server"]
    if not check(len(servers) == 1, "exactly one lookaside-server workload"):
        return
    srv = servers[0]
    where = srv["_file"]
    spec = srv["spec"]
    check(spec.get("replicas") == 1, f"{where}: replicas must be 1 (one SQLite file; "
                                      f"replicas share etcd: kubernetes-replicated/)")
    check(selects(spec["selector"]["matchLabels"], pod_labels(srv)),
          f"{where}: selector does not match the pod template")
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(c)
    port = check_server_container(where, pod, c, server_flags)
    db = env.get("LOOKASIDE_DB", "")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    vct = {v["metadata"]["name"] for v in spec.get("volumeClaimTemplates", [])}
    pvcs = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    on_volume = [n for n, p in mounts.items()
                 if db.startswith(p.rstrip("/") + "/") and (n in vct or n in pvcs)]
    check(on_volume, f"{where}: LOOKASIDE_DB={db!r} is not on a persistent volume")

    # ---- Services
    services = by_kind.get("Service", [])
    for s in services:
        sel = s["spec"].get("selector")
        check(any(selects(sel, pod_labels(w)) for w in workloads(docs)),
              f"{s['_file']}: Service {s['metadata']['name']} selects no workload")
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"
                and selects(s["spec"].get("selector"), pod_labels(srv))]
    check(headless, "no headless Service over the server")
    check(spec.get("serviceName") in [s["metadata"]["name"] for s in headless],
          f"{where}: serviceName must name the server's headless Service")
    lb = [(s, p) for s in services for p in s["spec"].get("ports", []) if p.get("name") == "grpclb"]
    if check(lb, "no Service port named grpclb (cluster DNS would publish no _grpclb._tcp)"):
        for s, p in lb:
            check(selects(s["spec"].get("selector"), pod_labels(srv))
                  and container_port(c, p.get("targetPort", p["port"])) == port,
                  f"{s['_file']}: the grpclb port of {s['metadata']['name']} must reach the "
                  f"server's port {port}")
            check(p.get("protocol", "TCP") == "TCP", "grpclb port must be TCP")

    # ---- backend and client examples
    others = [w for w in workloads(docs) if w is not srv]
    backend = [w for w in others
               if "lookaside-demo-backend" in str(w["spec"]["template"]["spec"]["containers"][0]
                                                  .get("command"))]
    client = [w for w in others
              if "lookaside-demo-client" in str(w["spec"]["template"]["spec"]["containers"][0]
                                                .get("command"))]
    check(backend, "no example backend Deployment (lookaside-demo-backend)")
    check(client, "no example client Deployment (lookaside-demo-client)")
    for w, flags in [(b, help_flags(bins["backend"])) for b in backend] + \
                    [(x, help_flags(bins["client"])) for x in client]:
        wc = w["spec"]["template"]["spec"]["containers"][0]
        check_args_flags(w["_file"], wc, flags)
        lbt = next((a.split("=", 1)[1] for a in wc.get("args", [])
                    if str(a).startswith("--lb=")), None)
        check(lbt is not None and target_host(lbt) in hosts,
              f"{w['_file']}: --lb {lbt!r} names no Service of these manifests")
        check(wc.get("resources", {}).get("limits", {}).get("cpu"),
              f"{w['_file']}: a CPU limit (the reporter reads it from the cgroup)")
    for b in backend:
        where = b["_file"]
        bc = b["spec"]["template"]["spec"]["containers"][0]
        pre = bc.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_s = " ".join(pre)
        check("drain" in pre_s, f"{where}: preStop must drain the backend")
        m = re.search(r"lookasidectl (.*?) drain", pre_s)
        if check(m, f"{where}: preStop must run lookasidectl ... drain"):
            ctl_flags = help_flags(bins["ctl"])
            for f in re.findall(r"--([a-z][a-z0-9-]*)", m.group(1)):
                check(f in ctl_flags, f"{where}: preStop: --{f} is not a lookasidectl flag")
        check(any(str(a).startswith("--stop-timeout-ms") for a in bc.get("args", [])),
              f"{where}: the backend should bound its SIGTERM drain (--stop-timeout-ms)")
        listen = next((a for a in bc.get("args", []) if str(a).startswith("--listen=")), "")
        check("$(POD_IP)" in listen and "POD_IP" in env_of(bc) or any(
            e.get("name") == "POD_IP" for e in bc.get("env", [])),
              f"{where}: the backend must listen on (and so register) its pod IP")
        grace = b["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        check(grace >= 10, f"{where}: terminationGracePeriodSeconds too short to drain")


def check_dockerfile(root, server_bin):
    path = os.path.join(root, "deploy", "Dockerfile")
    if not check(os.path.exists(path), "deploy/Dockerfile missing"):
        return
    text = open(path).read()
    # Join continuation lines, drop comments.
    lines = [l for l in text.replace("\\\n", " ").splitlines() if not l.lstrip().startswith("#")]
    stages, cur = [], None
    for l in lines:
        if re.match(r"\s*FROM\s", l, re.I):
            cur = {"from": l.split()[1], "lines": []}
            stages.append(cur)
        elif cur is not None:
            cur["lines"].append(l)
    check(len(stages) >= 2, "Dockerfile: must be multi-stage")
    for s in stages:
        check(s["from"] == "debian:12-slim", f"Dockerfile: stage FROM {s['from']}, not debian:12-slim")
    final = stages[-1] if stages else {"lines": []}
    body = "\n".join(final["lines"])
    installs = re.findall(r"apt-get install ([^&]*)", body)
    pkgs = {w for i in installs for w in i.split() if not w.startswith("-")}
    check(pkgs, "Dockerfile: the final stage installs no runtime libraries")
    check(not [p for p in pkgs if p.endswith("-dev") or p in ("build-essential", "cmake", "gcc")],
          f"Dockerfile: build tools or -dev packages in the final stage: {sorted(pkgs)}")
    check("COPY --from=" in body, "Dockerfile: the final stage copies the build's output")
    user = re.findall(r"^\s*USER\s+(\S+)", body, re.M)
    check(user and user[-1].split(":")[0] not in ("root", "0"),
          "Dockerfile: the final stage must run as a non-root USER")
    check(re.search(r"ENTRYPOINT.*lookaside-server", body), "Dockerfile: ENTRYPOINT lookaside-server")
    check("LOOKASIDE_LISTEN=0.0.0.0:" in body, "Dockerfile: listen beyond loopback")
    # Every library the server links directly comes from a listed package or
    # is part of the base image (or pulled in by a listed package).
    if shutil.which("objdump") and shutil.which("dpkg"):
        out = subprocess.run(["objdump", "-p", server_bin], capture_output=True, text=True).stdout
        needed = re.findall(r"NEEDED\s+(\S+)", out)
        # One dpkg call each (every call reads the whole package database).
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}\n"] + sorted(pkgs),
                           capture_output=True, text=True)
        deps = {x.strip().split()[0] for x in r.stdout.replace("|", ",").replace("\n", ",")
                .split(",") if x.strip()}
        base = {"libc6", "libgcc-s1", "zlib1g", "libstdc++6"}
        libs = [l for l in needed if not re.match(r"lib(asan|ubsan)", l)]  # sanitizer builds
        # Exact paths from the loader cache (a "*/lib" pattern makes dpkg scan
        # every file list, seconds per library); merged /usr: try both forms.
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        paths = []
        for l in libs:
            m = re.search(r"^\s*" + re.escape(l) + r" \(.*\) => (\S+)$", cache, re.M)
            if m:
                p = m.group(1)
                paths += [p, "/usr" + p] if p.startswith("/lib") else [p]
        r = subprocess.run(["dpkg", "-S"] + paths, capture_output=True, text=True)
        owners = {}
        for line in r.stdout.splitlines():
            pkg, _, path = line.partition(": ")
            for l in libs:
                if path.endswith("/" + l):
                    owners.setdefault(l, set()).update(x.split(":")[0] for x in pkg.split(", "))
        for lib, o in sorted(owners.items()):
            check(o & (pkgs | deps | base),
                  f"Dockerfile: {lib} (package {sorted(o)}) is not installed in the runtime stage")


def check_systemd(root, server_bin):
    path = os.path.join(root, "deploy", "systemd", "lookaside-server.service")
    if not check(os.path.exists(path), "deploy/systemd/lookaside-server.service missing"):
        return
    keys = {}
    section = None
    for l in open(path):
        l = l.strip()
        if not l or l[0] in "#;":
            continue
        if l.startswith("["):
            section = l.strip("[]")
            continue
        k, _, v = l.partition("=")
        keys.setdefault((section, k), []).append(v)
    svc = lambda k: keys.get(("Service", k), [None])[-1]
    check(svc("Type") == "notify", "unit: Type=notify")
    check(svc("StateDirectory"), "unit: StateDirectory=")
    check(svc("ExecStart") and "lookaside-server" in svc("ExecStart"), "unit: ExecStart")
    for k, v in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                 ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("RestrictSUIDSGID", "yes")]:
        check(svc(k) == v, f"unit: {k}={v}")
    check(svc("CapabilityBoundingSet") == "", "unit: no capabilities (CapabilityBoundingSet=)")
    check(("Install", "WantedBy") in keys, "unit: [Install] WantedBy=")
    db = [v for v in keys.get(("Service", "Environment"), []) if v.startswith("LOOKASIDE_DB=")]
    check(db and db[-1].startswith("LOOKASIDE_DB=%S/" + svc("StateDirectory")),
          "unit: the database must live in the StateDirectory")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("note: systemd-analyze not found; unit not verified by systemd")
        return
    with tempfile.TemporaryDirectory() as d:
        unit = os.path.join(d, "lookaside-server.service")
        with open(path) as src, open(unit, "w") as dst:
            for l in src:
                if l.startswith("ExecStart="):
                    l = "ExecStart=" + os.path.abspath(server_bin) + "\n"
                dst.write(l)
        r = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, timeout=60)
        # Lines about other units on this machine (or none running) are not ours.
        ours = [l for l in (r.stdout + r.stderr).splitlines() if "lookaside-server" in l]
        for l in ours:
            print("systemd-analyze: " + l)
        check(not ours, "unit: systemd-analyze verify complains (above)")


def main():
    if len(sys.argv) != 6:
        print(__doc__)
        return 2
    root = sys.argv[1]
    bins = dict(zip(["server", "backend", "client", "ctl"], sys.argv[2:]))
    docs = load_manifests(root)
    print(f"{len(docs)} Kubernetes objects parsed: "
          + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
    check_kubernetes(docs, bins)
    check_dockerfile(root, bins["server"])
    check_systemd(root, bins["server"])
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("deploy: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
