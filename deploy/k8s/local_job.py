"""Runs a Kubernetes Job manifest on this machine with podman (or docker), each pod as a
container started the way the kubelet would start it: for trying a Job without a cluster, and
for tests/container.rs, which runs redact-indexed-job.yaml and publish-gate-job.yaml with it.

    bash deploy/k8s/python.sh deploy/k8s/local_job.py deploy/k8s/redact-indexed-job.yaml \\
        --image localhost/blurgate:0.1.0 --completions 3 --secrets DIR --volumes DIR \\
        [--env NAME=VALUE]... [--engine-arg=--network=host]... [--dry-run]

What is taken from the manifest, as Kubernetes does it:
- Indexed Jobs: one pod per completion index, `parallelism` at a time, each index retried up
  to backoffLimitPerIndex times (else the Job's backoffLimit); JOB_COMPLETION_INDEX is set, and
  the fieldRef to the job-completion-index annotation resolves to it;
- env in order, with $(VAR) expanded against the variables defined before ($$ for a $);
  envFrom and secretKeyRef from the secrets; command/args with $(VAR) expanded;
- initContainers one after another, then the container;
- securityContext: runAsUser/runAsGroup (--user), fsGroup (a supplementary group that owns
  the volumes), runAsNonRoot (refused when the user would be root), readOnlyRootFilesystem,
  allowPrivilegeEscalation (no-new-privileges), capabilities;
- resources.limits (memory, cpu);
- volumes: a persistentVolumeClaim is the folder VOLUMES/CLAIM (made when missing, owned by
  the fsGroup and group-writable); an emptyDir a new folder per pod; a secret the files of
  SECRETS/SECRET, laid out as the kubelet does (a timestamped folder, `..data`, one link per
  key; mode defaultMode, 0644 unless set; group fsGroup), mounted read-only.

Changed for a local run: --image replaces every container's image; --completions N sets
completions and parallelism to N and the N of "$(JOB_COMPLETION_INDEX)/N" in env values;
--env NAME=VALUE adds or replaces a variable in every container (after the manifest's, as a
kustomize patch would); --engine-arg passes a flag to `run` (e.g. --network=host to reach a
server on 127.0.0.1). Not supported (refused): subPath mounts, configMaps, hostPath, more
than one main container.

Exits 0 when the Job completes, 1 when it fails; one line per pod on stderr, the containers'
output prefixed with their pod and container name.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid

import yaml

VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
LOCK = threading.Lock()


def log(message):
    with LOCK:
        print(f"local-job: {message}", file=sys.stderr, flush=True)


def expand(text, defined):
    """Kubernetes' $(VAR) expansion: defined variables replaced, others left as written."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = VAR_REF.match(text, i)
        if m and m.group(1) in defined:
            out.append(defined[m.group(1)])
            i = m.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def quantity_bytes(q):
    """A memory quantity (4Gi, 512Mi, 1G, 1000) in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTPE]i?|[km])?", str(q))
    if not m:
        raise SystemExit(f"local-job: cannot read the quantity {q!r}")
    factors = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(float(m.group(1)) * factors[m.group(2)])


def cpu_count(q):
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


class Runner:
    def __init__(self, args, job):
        self.args = args
        self.job = job
        self.engine = args.engine
        self.spec = job["spec"]
        self.pod = self.spec["template"]["spec"]
        self.name = job["metadata"]["name"]
        self.run_id = uuid.uuid4().hex[:6]
        self.work = os.path.abspath(args.work or os.path.join(args.volumes, f".local-job-{self.name}"))
        self.engine_args = list(args.engine_arg)
        if self.engine == "podman":
            # crun refuses machines whose cgroups are part v1, part v2; runc does not. Explicit
            # limits: the defaults podman takes from such machines can be too low to start.
            if shutil.which("runc"):
                self.engine_args += ["--runtime", "runc"]
            self.engine_args += ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
        self.live = set()

    # --- volumes -------------------------------------------------------------------------------

    def fs_group(self):
        return (self.pod.get("securityContext") or {}).get("fsGroup")

    def claim_dir(self, claim):
        path = os.path.abspath(os.path.join(self.args.volumes, claim))
        os.makedirs(path, exist_ok=True)
        group = self.fs_group()
        if group is not None:
            # As the kubelet applies fsGroup: the group owns the volume, may write, and new
            # files inherit it.
            for root, dirs, files in os.walk(path):
                for n in [root] + [os.path.join(root, f) for f in dirs + files]:
                    if not os.path.islink(n):
                        os.chown(n, -1, group)
                os.chmod(root, os.stat(root).st_mode | 0o2070)
        return path

    def secret_dir(self, secret, pod_dir, spec):
        """The kubelet's atomic-writer layout: ..TIMESTAMP/KEY, ..data -> it, KEY -> ..data/KEY."""
        source = os.path.join(self.args.secrets, secret)
        if not os.path.isdir(source):
            raise SystemExit(f"local-job: secret {secret!r}: no folder {source} (--secrets)")
        target = os.path.join(pod_dir, "secrets", secret)
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.") + uuid.uuid4().hex[:8]
        os.makedirs(os.path.join(target, stamp))
        mode = spec.get("defaultMode", 0o644)
        items = spec.get("items")
        keys = {k: k for k in sorted(os.listdir(source)) if os.path.isfile(os.path.join(source, k))}
        if items is not None:
            keys = {i["key"]: i["path"] for i in items}
        group = self.fs_group()
        for key, rel in keys.items():
            dest = os.path.join(target, stamp, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(source, key), dest)
            os.chmod(dest, mode)
            if group is not None:
                os.chown(dest, 0, group)
        os.symlink(stamp, os.path.join(target, "..data"))
        for rel in {r.split("/")[0] for r in keys.values()}:
            os.symlink(os.path.join("..data", rel), os.path.join(target, rel))
        return target

    def secret_values(self, secret):
        source = os.path.join(self.args.secrets, secret)
        if not os.path.isdir(source):
            raise SystemExit(f"local-job: secret {secret!r}: no folder {source} (--secrets)")
        out = {}
        for key in sorted(os.listdir(source)):
            if os.path.isfile(os.path.join(source, key)):
                with open(os.path.join(source, key)) as f:
                    out[key] = f.read()
        return out

    def mounts(self, container, pod_dir):
        volumes = {v["name"]: v for v in self.pod.get("volumes") or []}
        flags = []
        for m in container.get("volumeMounts") or []:
            if m.get("subPath") or m.get("subPathExpr"):
                raise SystemExit("local-job: subPath mounts are not supported")
            v = volumes[m["name"]]
            ro = bool(m.get("readOnly"))
            if "persistentVolumeClaim" in v:
                host = self.claim_dir(v["persistentVolumeClaim"]["claimName"])
                ro = ro or bool(v["persistentVolumeClaim"].get("readOnly"))
            elif "emptyDir" in v:
                host = os.path.join(pod_dir, "empty", v["name"])
                os.makedirs(host, exist_ok=True)
                os.chmod(host, 0o777)  # as the kubelet makes them
            elif "secret" in v:
                host = os.path.join(pod_dir, "secrets", v["secret"]["secretName"])
                if not os.path.isdir(host):
                    host = self.secret_dir(v["secret"]["secretName"], pod_dir, v["secret"])
                ro = True  # the kubelet mounts secrets read-only whatever the mount says
            else:
                raise SystemExit(f"local-job: volume {v['name']}: only persistentVolumeClaim, emptyDir and secret")
            flags += ["-v", f"{host}:{m['mountPath']}:{'ro' if ro else 'rw'}"]
        return flags

    # --- containers ----------------------------------------------------------------------------

    def environment(self, container, index, pod_name):
        env = {}
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)  # the Job controller adds it to every container
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                prefix = source.get("prefix", "")
                env.update({prefix + k: v for k, v in self.secret_values(source["secretRef"]["name"]).items()})
            else:
                raise SystemExit("local-job: envFrom supports secretRef only")
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
                continue
            source = e.get("valueFrom") or {}
            if "fieldRef" in source:
                field = source["fieldRef"]["fieldPath"]
                if field == INDEX_FIELD and index is not None:
                    env[e["name"]] = str(index)
                elif field == "metadata.name":
                    env[e["name"]] = pod_name
                elif field == "metadata.namespace":
                    env[e["name"]] = "default"
                else:
                    raise SystemExit(f"local-job: fieldRef {field} is not supported")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[e["name"]] = self.secret_values(ref["name"])[ref["key"]]
            else:
                raise SystemExit(f"local-job: env {e['name']}: valueFrom {list(source)} is not supported")
        for item in self.args.env:
            name, _, value = item.partition("=")
            env[name] = value
        return env

    def user_flags(self, container, image_user):
        pod_sc = self.pod.get("securityContext") or {}
        sc = container.get("securityContext") or {}
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        flags = []
        if user is not None:
            flags += ["--user", f"{user}:{group}" if group is not None else str(user)]
        effective = user if user is not None else image_user
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and str(effective).split(":")[0] in ("", "0", "root"):
            raise SystemExit(f"local-job: {container['name']}: runAsNonRoot, but the container would run as root")
        if self.fs_group() is not None:
            flags += ["--group-add", str(self.fs_group())]
        for g in pod_sc.get("supplementalGroups") or []:
            flags += ["--group-add", str(g)]
        if sc.get("readOnlyRootFilesystem"):
            flags += ["--read-only"]
            if self.engine == "podman":
                flags += ["--read-only-tmpfs=false"]  # Kubernetes adds no writable /tmp
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        caps = sc.get("capabilities") or {}
        flags += [f for c in caps.get("drop") or [] for f in ("--cap-drop", c)]
        flags += [f for c in caps.get("add") or [] for f in ("--cap-add", c)]
        if sc.get("privileged"):
            raise SystemExit("local-job: privileged containers are not run")
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" in limits and not self.args.no_limits:
            flags += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits and not self.args.no_limits:
            flags += ["--cpus", str(cpu_count(limits["cpu"]))]
        return flags

    def run_container(self, container, index, pod_name, pod_dir, image_user):
        env = self.environment(container, index, pod_name)
        command = [expand(str(a), env) for a in container.get("command") or []]
        argv = [expand(str(a), env) for a in container.get("args") or []]
        name = f"{pod_name}-{container['name']}"
        flags = ["run", "--rm", "--name", name, "--hostname", pod_name] + self.engine_args
        flags += self.user_flags(container, image_user)
        flags += self.mounts(container, pod_dir)
        # Values through the engine's environment (-e NAME), so no secret is on a command line.
        for k in env:
            flags += ["-e", k]
        if command:
            flags += ["--entrypoint", command[0]]
        flags += [self.args.image or container["image"]] + command[1:] + argv
        if self.args.dry_run:
            print(shlex.join([self.engine] + flags))
            return 0
        process_env = dict(os.environ)
        process_env.update(env)
        with LOCK:
            self.live.add(name)
        try:
            p = subprocess.Popen([self.engine] + flags, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for line in p.stdout:
                with LOCK:
                    sys.stderr.write(f"[{name}] {line.decode(errors='replace')}")
                    sys.stderr.flush()
            return p.wait()
        finally:
            with LOCK:
                self.live.discard(name)

    def image_user(self):
        images = {self.args.image} if self.args.image else {c["image"] for c in self.pod.get("containers") or []}
        users = {}
        for image in images:
            if self.args.dry_run:
                users[image] = ""
                continue
            out = subprocess.run([self.engine, "image", "inspect", "--format", "{{.Config.User}}", image], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"local-job: no image {image}: {out.stderr.strip()}")
            users[image] = out.stdout.strip()
        return users

    def run_pod(self, index, attempt, users):
        suffix = f"{index}-{attempt}" if index is not None else str(attempt)
        pod_name = f"{self.name}-{suffix}-{self.run_id}"
        pod_dir = os.path.join(self.work, pod_name)
        os.makedirs(pod_dir, exist_ok=True)
        try:
            for c in (self.pod.get("initContainers") or []) + self.pod["containers"]:
                rc = self.run_container(c, index, pod_name, pod_dir, users[self.args.image or c["image"]])
                if rc != 0:
                    log(f"pod {pod_name}: container {c['name']} exited {rc}")
                    return False
            return True
        finally:
            if not self.args.keep:
                shutil.rmtree(pod_dir, ignore_errors=True)

    def run(self):
        if len(self.pod.get("containers") or []) != 1:
            raise SystemExit("local-job: one main container per pod is supported")
        if self.pod.get("restartPolicy") != "Never":
            raise SystemExit("local-job: restartPolicy Never is supported (the pod is retried as a whole)")
        indexed = self.spec.get("completionMode") == "Indexed"
        completions = self.spec.get("completions", 1)
        parallelism = min(self.spec.get("parallelism", 1), completions)
        per_index = self.spec.get("backoffLimitPerIndex") if indexed else None
        backoff = self.spec.get("backoffLimit", 6)
        users = self.image_user()
        todo = list(range(completions))
        failed_total, done, failed_indexes = 0, [], []
        state = threading.Lock()
        started = time.monotonic()
        deadline = self.spec.get("activeDeadlineSeconds") or self.args.timeout

        def worker():
            nonlocal failed_total
            while True:
                with state:
                    if not todo:
                        return
                    slot = todo.pop(0)
                attempt = 0
                while True:
                    t0 = time.monotonic()
                    ok = self.run_pod(slot if indexed else None, attempt, users)
                    label = f"index {slot}" if indexed else f"pod {slot}"
                    log(f"{label}: {'succeeded' if ok else 'failed'} in {time.monotonic() - t0:.1f} s (attempt {attempt + 1})")
                    if ok:
                        with state:
                            done.append(slot)
                        break
                    with state:
                        failed_total += 1
                        give_up = attempt >= per_index if per_index is not None else failed_total > backoff
                    if give_up:
                        with state:
                            failed_indexes.append(slot)
                        break
                    attempt += 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallelism)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - (time.monotonic() - started)))
        if any(t.is_alive() for t in threads):
            log(f"job {self.name}: past its deadline ({deadline} s): stopping its containers")
            with LOCK:
                live = list(self.live)
            for n in live:
                subprocess.run([self.engine, "rm", "-f", "-t", "0", n], capture_output=True)
            return 1
        wall = time.monotonic() - started
        if failed_indexes:
            log(f"job {self.name}: failed: indexes {sorted(failed_indexes)} failed ({len(done)} of {completions} succeeded, {wall:.1f} s)")
            return 1
        log(f"job {self.name}: complete, {completions} of {completions} succeeded in {wall:.1f} s")
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--image", help="replaces every container's image")
    parser.add_argument("--completions", type=int, help="completions and parallelism, and N of $(JOB_COMPLETION_INDEX)/N")
    parser.add_argument("--secrets", required=True, help="a folder per secret, a file per key")
    parser.add_argument("--volumes", required=True, help="a folder per persistentVolumeClaim (made when missing)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--engine", default="podman" if shutil.which("podman") else "docker")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="ARG")
    parser.add_argument("--work", help="per-pod folders (secrets, emptyDirs); default VOLUMES/.local-job-NAME")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds, unless the Job sets activeDeadlineSeconds")
    parser.add_argument("--no-limits", action="store_true", help="ignore resources.limits")
    parser.add_argument("--keep", action="store_true", help="keep the per-pod folders")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead")
    args = parser.parse_args()

    with open(args.manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    jobs = [d for d in docs if d.get("kind") == "Job"]
    if len(jobs) != 1:
        raise SystemExit(f"local-job: {args.manifest} holds {len(jobs)} Jobs, not one")
    job = jobs[0]
    spec = job["spec"]
    if args.completions is not None:
        old = spec.get("completions", 1)
        spec["completions"] = args.completions
        spec["parallelism"] = args.completions
        pattern = re.compile(re.escape("$(JOB_COMPLETION_INDEX)/") + str(old) + r"\b")
        for c in (spec["template"]["spec"].get("initContainers") or []) + spec["template"]["spec"]["containers"]:
            for e in c.get("env") or []:
                if isinstance(e.get("value"), str):
                    e["value"] = pattern.sub(f"$(JOB_COMPLETION_INDEX)/{args.completions}", e["value"])
    return Runner(args, job).run()


if __name__ == "__main__":
    sys.exit(main())
