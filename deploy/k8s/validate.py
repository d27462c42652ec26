"""Checks Kubernetes manifests offline, against the API's own models, and blurgate's contract.

    bash deploy/k8s/python.sh deploy/k8s/validate.py deploy/k8s/*.yaml

Schema: every field of every object is looked up in the models of the pinned Kubernetes Python
client (openapi_types / attribute_map, generated from the API's OpenAPI document): an unknown
or misspelt field, a value of the wrong type or a missing required field is an error naming
its path. Then the rules the API server adds for Jobs and pods (names, Indexed Jobs,
backoffLimitPerIndex, volumes and mounts, $(VAR) references), and blurgate's own:

- the pods run as a non-root user, without privilege escalation, with a read-only root
  filesystem and every capability dropped (the "restricted" Pod Security Standard);
- no key, password or token is written into the manifest: secrets only by reference;
- an Indexed Job's BLURGATE_SHARD is "$(JOB_COMPLETION_INDEX)/N" with N its completions;
- every file argument under /secrets/ lies in a read-only secret mount, --report in a
  mounted volume, and the result cache (BLURGATE_CACHE_DIR) is a volume.

Given PersistentVolumeClaims too (volumes.yaml), every claim the Jobs mount must be declared.
Prints one line per manifest; exits 1 when any error was found.
"""

import re
import sys

import yaml
from kubernetes import client

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HEX_KEY = re.compile(r"\b[0-9a-fA-F]{64}\b")
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS?)(_ID)?$", re.IGNORECASE)
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
CACHE_DIR = "/var/cache/blurgate"  # the image's BLURGATE_CACHE_DIR

# apiVersion, kind -> the client's model class name.
KINDS = {
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
    ("v1", "Pod"): "V1Pod",
    ("v1", "Secret"): "V1Secret",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "ConfigMap"): "V1ConfigMap",
}


class Errors(list):
    def add(self, path, message):
        self.append(f"{path}: {message}")


def required_fields(klass):
    """Fields the model refuses to be without (its setters raise on None)."""
    required = []
    for attr in klass.openapi_types:
        try:
            instance = klass.__new__(klass)
            instance.local_vars_configuration = client.Configuration()
            setattr(instance, attr, None)
        except ValueError:
            required.append(attr)
        except Exception:
            pass
    return required


def check_value(value, type_name, path, errors):
    """`value` against the client's type notation: V1Foo, list[...], dict(str, ...), str..."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.add(path, f"expected a list ({type_name}), got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_value(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.add(path, f"expected a map ({type_name}), got {type(value).__name__}")
            return
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        for k, v in value.items():
            if not isinstance(k, str):
                errors.add(path, f"map key {k!r} is not a string")
            check_value(v, inner, f"{path}.{k}", errors)
        return
    primitives = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "datetime": (str,)}
    if type_name in primitives:
        ok = isinstance(value, primitives[type_name])
        if type_name in ("int", "float") and isinstance(value, bool):
            ok = False
        if not ok:
            errors.add(path, f"expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name == "object":  # IntOrString, quantities, raw extensions
        return
    klass = getattr(client, type_name, None)
    if klass is None:
        errors.add(path, f"the client has no model {type_name}")
        return
    check_object(value, klass, path, errors)


def check_object(value, klass, path, errors):
    if not isinstance(value, dict):
        errors.add(path, f"expected an object ({klass.__name__}), got {type(value).__name__}")
        return
    by_json = {json: attr for attr, json in klass.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.add(f"{path}.{key}", f"unknown field of {klass.__name__} (Kubernetes would refuse it in strict mode)")
            continue
        check_value(item, klass.openapi_types[by_json[key]], f"{path}.{key}", errors)
    for attr in required_fields(klass):
        if value.get(klass.attribute_map[attr]) is None:
            errors.add(path, f"{klass.attribute_map[attr]} is required in {klass.__name__}")


def deserializes(doc, model, path, errors):
    """The client's own deserialiser takes the document (its validation on top of ours)."""
    try:
        client.ApiClient()._ApiClient__deserialize(doc, model)
    except (ValueError, TypeError) as e:
        errors.add(path, f"the client refuses it: {e}")


def expand(text, defined):
    """Kubernetes' $(VAR) expansion: defined variables are replaced, others left as written."""
    return VAR_REF.sub(lambda m: defined.get(m.group(1), m.group(0)), text.replace("$$", "\0")).replace("\0", "$")


def check_pod_spec(spec, path, errors, completions=None, indexed=False):
    pod_security = spec.get("securityContext") or {}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for name in volumes:
        if not DNS1123_LABEL.match(name) or len(name) > 63:
            errors.add(f"{path}.volumes", f"volume name {name!r} is not a DNS-1123 label")
    if len(volumes) != len(spec.get("volumes") or []):
        errors.add(f"{path}.volumes", "two volumes share a name")
    mounted = set()
    if spec.get("restartPolicy") not in ("Never", "OnFailure"):
        errors.add(f"{path}.restartPolicy", "a Job's pods need Never or OnFailure")
    all_containers = [("initContainers", c) for c in spec.get("initContainers") or []]
    all_containers += [("containers", c) for c in spec.get("containers") or []]
    names = [c.get("name") for _, c in all_containers]
    if len(set(names)) != len(names):
        errors.add(path, "two containers share a name")
    for group, c in all_containers:
        cpath = f"{path}.{group}[{c.get('name')}]"
        if not DNS1123_LABEL.match(c.get("name") or ""):
            errors.add(cpath, "the container name is not a DNS-1123 label")
        image = c.get("image") or ""
        if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            errors.add(f"{cpath}.image", f"{image!r}: name a tagged image, not latest")
        sc = c.get("securityContext") or {}
        # Restricted Pod Security Standard, pod and container level together.
        non_root = sc.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_security.get("runAsUser"))
        if non_root is not True:
            errors.add(cpath, "runAsNonRoot must be true (pod or container securityContext)")
        if user is None or user == 0:
            errors.add(cpath, "runAsUser must name a non-root user (the image's is 65532)")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.add(cpath, "securityContext.allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.add(cpath, "securityContext.readOnlyRootFilesystem must be true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            errors.add(cpath, "securityContext.capabilities.drop must hold ALL")
        if sc.get("privileged"):
            errors.add(cpath, "must not be privileged")
        seccomp = (sc.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.add(cpath, "seccompProfile.type must be RuntimeDefault (pod or container)")

        # Environment: secrets only by reference; $(VAR) only to variables defined before.
        defined = {}
        if indexed:
            defined["JOB_COMPLETION_INDEX"] = "0"  # the Job controller sets it too
        for ef in c.get("envFrom") or []:
            if "secretRef" not in ef and "configMapRef" not in ef:
                errors.add(f"{cpath}.envFrom", "needs secretRef or configMapRef")
        for e in c.get("env") or []:
            name, epath = e.get("name"), f"{cpath}.env[{e.get('name')}]"
            if "value" in e and "valueFrom" in e:
                errors.add(epath, "value and valueFrom together")
            if "value" in e:
                value = e["value"]
                if not isinstance(value, str):
                    errors.add(epath, f"value must be a string (quote it): {value!r}")
                    continue
                if SECRET_NAME.search(name or "") and value and not value.startswith("/"):
                    errors.add(epath, "looks like a secret written into the manifest: use secretKeyRef or envFrom")
                for ref in VAR_REF.findall(value):
                    if ref not in defined:
                        errors.add(epath, f"$({ref}) refers to no variable defined before it")
                defined[name] = expand(value, defined)
            else:
                source = e.get("valueFrom") or {}
                field = (source.get("fieldRef") or {}).get("fieldPath")
                if field == "metadata.annotations['batch.kubernetes.io/job-completion-index']":
                    if not indexed:
                        errors.add(epath, "the completion index exists only in an Indexed Job")
                    defined[name] = "0"
                else:
                    defined[name] = "x"
        for part in ("command", "args"):
            for i, a in enumerate(c.get(part) or []):
                if not isinstance(a, str):
                    errors.add(f"{cpath}.{part}[{i}]", f"must be a string: {a!r}")
                    continue
                for ref in VAR_REF.findall(a):
                    if ref not in defined:
                        errors.add(f"{cpath}.{part}[{i}]", f"$({ref}) is not a variable of the container")
        if indexed:
            shard = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "BLURGATE_SHARD"), None)
            if group == "containers" and shard != f"$(JOB_COMPLETION_INDEX)/{completions}":
                errors.add(cpath, f"BLURGATE_SHARD is {shard!r}, not \"$(JOB_COMPLETION_INDEX)/{completions}\" (completions)")

        # Mounts: every one names a volume; secrets read-only; files the arguments name lie
        # in the right mounts.
        mounts = {}
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                errors.add(f"{cpath}.volumeMounts", f"{m.get('name')!r} is no volume of the pod")
                continue
            if m.get("mountPath") in mounts:
                errors.add(f"{cpath}.volumeMounts", f"{m.get('mountPath')} is mounted twice")
            mounts[m["mountPath"]] = (m, volumes[m["name"]])
            mounted.add(m["name"])
            if "secret" in volumes[m["name"]] and not m.get("readOnly"):
                errors.add(f"{cpath}.volumeMounts[{m['name']}]", "mount secrets readOnly")

        def mount_of(file):
            best = None
            for mp, mv in mounts.items():
                if file.startswith(mp.rstrip("/") + "/") and (best is None or len(mp) > len(best[0])):
                    best = (mp, mv)
            return best

        argv = [a for a in (c.get("command") or []) + (c.get("args") or []) if isinstance(a, str)]
        env_paths = [e["value"] for e in c.get("env") or [] if isinstance(e.get("value"), str)]
        for a in argv + env_paths:
            if a.startswith("/secrets/"):
                found = mount_of(a) or (mounts.get(a.rstrip("/")) and (a, mounts[a.rstrip("/")]))
                if not found or "secret" not in found[1][1]:
                    errors.add(cpath, f"{a} lies in no secret volume")
        for i, a in enumerate(argv):
            if i > 0 and argv[i - 1] in ("--report", "--out", "--junit", "--html") and a.startswith("/"):
                if mount_of(a) is None:
                    errors.add(cpath, f"{argv[i - 1]} {a} lies in no volume: it would be lost with the pod")
        if c.get("args", [None])[0] in ("redact", "check") and CACHE_DIR not in mounts:
            errors.add(cpath, f"the result cache {CACHE_DIR} (BLURGATE_CACHE_DIR) is not a volume")
        if sc.get("readOnlyRootFilesystem") and c.get("args", [None])[0] in ("redact", "check") and "/tmp" not in mounts:
            errors.add(cpath, "a read-only root filesystem needs a volume at /tmp (videos go through a local copy)")
    for name in volumes:
        if name not in mounted:
            errors.add(f"{path}.volumes[{name}]", "mounted by no container")


def check_job(doc, path, errors):
    spec = doc.get("spec") or {}
    name = (doc.get("metadata") or {}).get("name") or ""
    # A Job's name becomes a label value of its pods: at most 63 characters.
    if not DNS1123_SUBDOMAIN.match(name) or len(name) > 63:
        errors.add(f"{path}.metadata.name", f"{name!r} is not a DNS-1123 name of at most 63 characters")
    indexed = spec.get("completionMode") == "Indexed"
    if spec.get("completionMode") not in (None, "Indexed", "NonIndexed"):
        errors.add(f"{path}.spec.completionMode", "Indexed or NonIndexed")
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if indexed and not completions:
        errors.add(f"{path}.spec.completions", "an Indexed Job needs completions")
    if completions and parallelism and parallelism > completions:
        errors.add(f"{path}.spec.parallelism", "more than completions")
    template = (spec.get("template") or {}).get("spec") or {}
    if "backoffLimitPerIndex" in spec or "maxFailedIndexes" in spec:
        if not indexed:
            errors.add(f"{path}.spec", "backoffLimitPerIndex and maxFailedIndexes need completionMode Indexed")
        if template.get("restartPolicy") != "Never":
            errors.add(f"{path}.spec", "backoffLimitPerIndex needs restartPolicy Never")
    check_pod_spec(template, f"{path}.spec.template.spec", errors, completions, indexed)


def validate(file, claims):
    """Checks one file; `claims` collects (claims declared, claims used) across the files."""
    errors = Errors()
    with open(file) as f:
        text = f.read()
    for line_no, line in enumerate(text.splitlines(), 1):
        if HEX_KEY.search(line.split("#", 1)[0]):
            errors.add(f"{file}:{line_no}", "holds what looks like a key (64 hexadecimal digits)")
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    kinds = []
    for i, doc in enumerate(docs):
        path = f"{file}#{i}"
        model = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
        if model is None:
            errors.add(path, f"{doc.get('apiVersion')} {doc.get('kind')} is not a kind this check knows")
            continue
        kinds.append(f"{doc['kind']} {(doc.get('metadata') or {}).get('name')}")
        before = len(errors)
        check_object(doc, getattr(client, model), path, errors)
        deserializes(doc, model, path, errors)
        if len(errors) > before:
            continue  # the rules below read a document of the right shape
        if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
            errors.add(path, "a Secret with its data in the repository")
        if doc["kind"] == "PersistentVolumeClaim":
            claims[0].add(doc["metadata"]["name"])
        if doc["kind"] == "Job":
            check_job(doc, path, errors)
            for v in (doc["spec"]["template"]["spec"].get("volumes") or []):
                if "persistentVolumeClaim" in v:
                    claims[1].add(v["persistentVolumeClaim"]["claimName"])
    return kinds, errors


def main(files):
    if not files:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = False
    claims = (set(), set())  # declared, used
    for file in files:
        kinds, errors = validate(file, claims)
        if errors:
            failed = True
            print(f"{file}: {len(errors)} error(s)")
            for e in errors:
                print(f"  {e}")
        else:
            print(f"{file}: valid ({', '.join(kinds)}; Kubernetes client {client.__version__ if hasattr(client, '__version__') else ''})")
    # Given the claims too, every claim a Job mounts must be among them.
    if claims[0] and claims[1] - claims[0]:
        failed = True
        print(f"claims mounted but declared in none of the files: {', '.join(sorted(claims[1] - claims[0]))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
