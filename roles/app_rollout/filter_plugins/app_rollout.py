"""Filters for the app_rollout role: image references, Job names, rollout and Job states, the
checks of the app list (resources, security settings, probes), the writable volumes and the
restarts the soak check looks for.

The states are computed here (not with `wait: true`/`wait_condition`) because of known traps in
kubernetes.core 6.x (bundled with ansible 12):
- `wait_condition: {type: Complete}` on a Job keeps polling until the timeout when the Job
  fails: a wait condition matches one condition type only
  (https://github.com/ansible-collections/kubernetes.core/issues/1201, fixed by a native Job
  predicate in https://github.com/ansible-collections/kubernetes.core/pull/1202, not in 6.2);
- `wait: true` on a Deployment only compares replica counts (`deployment_ready` in
  plugins/module_utils/k8s/waiter.py) and ignores `Progressing=False` /
  `ProgressDeadlineExceeded`, so new pods that never become ready are only noticed at the
  timeout.
So the role polls the objects with k8s_info and classifies them with these filters.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ansible.errors import AnsibleFilterError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def image_ref(repository: str, release: str) -> str:
    """`repo:tag`, or `repo@sha256:...` for a digest; a full reference (with / or :) is kept."""
    release = str(release or "").strip()
    repository = str(repository or "").strip()
    if not release:
        raise AnsibleFilterError("app_rollout: empty release (set app_release / --release)")
    if DIGEST.match(release):
        return f"{repository}@{release}"
    if TAG.match(release):
        return f"{repository}:{release}"
    raise AnsibleFilterError(
        f"app_rollout: release {release!r} is neither an image tag nor a sha256 digest"
    )


def _slug(text: str, length: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:length].strip("-")


def job_name(prefix: str, release: str, image: str, command: Any = None) -> str:
    """A DNS-1123 label per release: `<prefix>-<release slug>-<hash of image and command>`.

    A Job's pod template is immutable, so every release (and every change of the migration
    image or command within a release) gets its own Job. At most 63 characters (the Job name
    is also a pod label value).
    """
    digest = hashlib.sha256(
        json.dumps([release, image, command], sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    head = _slug(prefix, 20) or "migrate"
    room = 63 - len(head) - len(digest) - 2
    slug = _slug(str(release).replace("sha256:", ""), room) or "release"
    return f"{head}-{slug}-{digest}"


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = (obj or {}).get("status") or {}
    return {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def deployment_state(deploy: dict[str, Any]) -> dict[str, Any]:
    """Where a Deployment's rollout is: complete, progressing or failed (with the reason).

    complete: the controller has seen the current generation (observedGeneration), every
    replica runs the current template (updatedReplicas) and is available, and no old replica
    is left. failed: `Progressing=False` with `ProgressDeadlineExceeded` for the current
    generation (the controller sets it after spec.progressDeadlineSeconds without progress).
    """
    meta = deploy.get("metadata") or {}
    spec = deploy.get("spec") or {}
    status = deploy.get("status") or {}
    name = meta.get("name", "?")
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    unavailable = int(status.get("unavailableReplicas") or 0)
    out = {
        "name": name,
        "replicas": want,
        "updated": updated,
        "available": available,
        "total": total,
        "generation": generation,
        "observed_generation": observed,
        "reason": "",
        "message": "",
    }
    if observed < generation:
        return {**out, "state": "progressing", "reason": "GenerationNotObserved"}
    # Complete first: a Deployment whose replicas all run the current template and are
    # available is done, even if a stale Progressing=False from before is still shown.
    if updated >= want and available >= want and total == updated and unavailable == 0:
        return {**out, "state": "complete", "reason": "Available"}
    progressing = _conditions(deploy).get("Progressing") or {}
    if progressing.get("status") == "False" and progressing.get("reason") == (
        "ProgressDeadlineExceeded"
    ):
        return {
            **out,
            "state": "failed",
            "reason": "ProgressDeadlineExceeded",
            "message": progressing.get("message", ""),
        }
    if spec.get("paused"):
        return {**out, "state": "failed", "reason": "Paused", "message": "the Deployment is paused"}
    return {
        **out,
        "state": "progressing",
        "reason": progressing.get("reason", "") or "Waiting",
        "message": f"{updated}/{want} updated, {available}/{want} available, {total} total",
    }


def deployment_states(deploys: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The states of the named Deployments (missing ones are `missing`), plus a summary.

    summary.done is true when every one is complete or any one has failed.
    """
    by_name = {(d.get("metadata") or {}).get("name"): d for d in deploys or []}
    states = {}
    for name in names:
        if name in by_name:
            states[name] = deployment_state(by_name[name])
        else:
            states[name] = {"name": name, "state": "missing", "reason": "NotFound", "message": ""}
    failed = [s for s in states.values() if s["state"] in ("failed", "missing")]
    complete = all(s["state"] == "complete" for s in states.values())
    return {
        "states": states,
        "failed": failed,
        "complete": complete,
        "done": complete or bool(failed),
    }


def job_state(job: dict[str, Any] | None) -> dict[str, Any]:
    """complete, failed, running or missing, with the condition's reason and message.

    `Failed` (or `FailureTarget`, set first since Kubernetes 1.31 while the pods terminate)
    means failed: the role stops at once instead of polling until a timeout.
    """
    if not job:
        return {"state": "missing", "reason": "NotFound", "message": ""}
    conditions = _conditions(job)
    for kind in ("Failed", "FailureTarget"):
        cond = conditions.get(kind) or {}
        if cond.get("status") == "True":
            return {
                "state": "failed",
                "reason": cond.get("reason", kind),
                "message": cond.get("message", ""),
            }
    cond = conditions.get("Complete") or {}
    if cond.get("status") == "True":
        return {"state": "complete", "reason": "Complete", "message": cond.get("message", "")}
    status = job.get("status") or {}
    return {
        "state": "running",
        "reason": "Running",
        "message": (
            f"active={status.get('active', 0)} succeeded={status.get('succeeded', 0)} "
            f"failed={status.get('failed', 0)}"
        ),
    }


def container_images(deploy: dict[str, Any] | None) -> dict[str, str]:
    """{container name: image} of a Deployment's pod template (init containers too)."""
    if not deploy:
        return {}
    pod = ((deploy.get("spec") or {}).get("template") or {}).get("spec") or {}
    images = {}
    for key in ("initContainers", "containers"):
        for c in pod.get(key) or []:
            images[c.get("name", "?")] = c.get("image", "")
    return images


def changed_since(deploys: list[dict[str, Any]], recorded: dict[str, Any]) -> list[str]:
    """Names of the Deployments whose pod template differs from the recorded one.

    Only Deployments that existed when recorded count (a new one has nothing to go back to).
    """
    out = []
    for d in deploys or []:
        name = (d.get("metadata") or {}).get("name")
        record = (recorded or {}).get(name) or {}
        if not record.get("exists"):
            continue
        if (d.get("spec") or {}).get("template") != record.get("template"):
            out.append(name)
    return sorted(out)


def pod_report(pod: dict[str, Any]) -> list[str]:
    """Lines describing why a pod ended: phase, reason, and each container's termination."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    lines = [
        f"pod {meta.get('name', '?')}: phase={status.get('phase', '?')}"
        + (f" reason={status['reason']}" if status.get("reason") else "")
        + (f" message={status['message']}" if status.get("message") else "")
    ]
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        last = cs.get("lastState") or {}
        for label, st in (("state", state), ("last state", last)):
            for kind, detail in st.items():
                detail = detail or {}
                parts = [f"container {cs.get('name', '?')} {label}: {kind}"]
                for key in ("exitCode", "reason", "message"):
                    if detail.get(key) not in (None, ""):
                        parts.append(f"{key}={detail[key]}")
                lines.append(" ".join(parts))
    return lines


def writable_volumes(paths: Any, app: str = "?") -> list[dict[str, str]]:
    """[{name, path}] of the emptyDir volumes for the paths an app writes (its root filesystem
    is read-only): `/tmp` -> `tmp`, `/app/.next/cache` -> `app-next-cache`."""
    out: list[dict[str, str]] = []
    for raw in paths or []:
        path = str(raw).strip()
        if not path.startswith("/") or path == "/" or ".." in path.split("/"):
            raise AnsibleFilterError(
                f"app_rollout: app {app}: writable path {raw!r} must be an absolute path below /"
            )
        name = ("w-" + _slug(path, 40)) if _slug(path, 40) else "w"
        if any(v["name"] == name or v["path"] == path for v in out):
            raise AnsibleFilterError(f"app_rollout: app {app}: writable path {path} given twice")
        out.append({"name": name, "path": path})
    return out


# The fields of a probe that say when and how often it runs; the rest is what it checks.
PROBE_TIMING = frozenset(
    {
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    }
)
PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def _probe_check(probe: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in probe.items() if k not in PROBE_TIMING}


def check_probes(app: dict[str, Any]) -> list[str]:
    """Why an app's probes are refused (empty: they are fine).

    - each probe is a mapping with exactly one handler (httpGet, tcpSocket, exec or grpc);
    - a probe of an app without a port checks no port;
    - a liveness probe needs a startup probe: without one, a slow first start (the api's schema
      check, a cold Next.js cache) is killed by liveness before it is up;
    - liveness is not a copy of readiness (the same check, whatever the timings): readiness
      may check dependencies and fail while the process is fine, and on liveness the same
      failure restarts every pod instead of taking it out of the Service. The 2026-04-24
      admin incident was a liveness check on a wrong path, restarting the pod every 90 s.
    """
    name = str(app.get("name", "?"))
    errors = []
    probes = {}
    for kind in ("startup", "readiness", "liveness"):
        probe = app.get(f"{kind}_probe")
        if probe in (None, {}):
            continue
        handlers = [h for h in PROBE_HANDLERS if isinstance(probe, dict) and h in probe]
        if not isinstance(probe, dict) or len(handlers) != 1:
            errors.append(f"{name}: {kind}_probe needs exactly one of {', '.join(PROBE_HANDLERS)}")
            continue
        handler = probe[handlers[0]]
        if not app.get("port") and isinstance(handler, dict) and "port" in handler:
            errors.append(f"{name}: {kind}_probe checks a port, but the app has no port")
        probes[kind] = probe
    if "liveness" in probes and "startup" not in probes:
        errors.append(
            f"{name}: liveness_probe needs a startup_probe (a slow first start would be "
            "killed by the liveness probe)"
        )
    if (
        "liveness" in probes
        and "readiness" in probes
        and _probe_check(probes["liveness"]) == _probe_check(probes["readiness"])
    ):
        errors.append(
            f"{name}: liveness_probe checks what readiness_probe checks "
            f"({json.dumps(_probe_check(probes['liveness']), sort_keys=True)}): a failing "
            "dependency or a slow answer would restart every pod instead of taking it out of "
            "the Service; give liveness a check of the process itself (tcpSocket on its port, "
            "or a path that checks no dependency)"
        )
    return errors


def current_pod_hashes(
    replicasets: list[dict[str, Any]], deployments: list[dict[str, Any]], names: list[str]
) -> dict[str, str]:
    """{Deployment name: pod-template-hash of its current revision} for the named Deployments:
    the hash of the ReplicaSet the Deployment owns with the same deployment.kubernetes.io/revision
    (how `kubectl rollout status` finds the new ReplicaSet)."""
    revision_key = "deployment.kubernetes.io/revision"
    out = {}
    for d in deployments or []:
        meta = d.get("metadata") or {}
        if meta.get("name") not in (names or []):
            continue
        revision = (meta.get("annotations") or {}).get(revision_key)
        for rs in replicasets or []:
            rs_meta = rs.get("metadata") or {}
            owners = {o.get("uid") for o in rs_meta.get("ownerReferences") or []}
            if (
                meta.get("uid") in owners
                and revision is not None
                and (rs_meta.get("annotations") or {}).get(revision_key) == revision
            ):
                out[meta["name"]] = (rs_meta.get("labels") or {}).get("pod-template-hash", "")
    return out


def soak_restarts(pods: list[dict[str, Any]], hashes: dict[str, str]) -> list[str]:
    """One line per container of a new pod (the current revision's, per `hashes`) that has
    restarted, with its restart count and its last termination's reason and exit code."""
    lines = []
    for pod in pods or []:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        app = labels.get("app.kubernetes.io/name")
        if app not in (hashes or {}) or meta.get("deletionTimestamp"):
            continue
        if not hashes[app] or labels.get("pod-template-hash") != hashes[app]:
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            count = int(cs.get("restartCount") or 0)
            if count <= 0:
                continue
            last = ((cs.get("lastState") or {}).get("terminated")) or {}
            ended = ", ".join(
                f"{key} {last[key]}" for key in ("reason", "exitCode", "message") if key in last
            )
            lines.append(
                f"Deployment {app}: pod {meta.get('name', '?')} container {cs.get('name', '?')} "
                f"restarted {count} time{'s' if count != 1 else ''} after the rollout (last "
                f"termination: {ended or 'unknown'})"
            )
    return sorted(lines)


def check_apps(apps: list[dict[str, Any]]) -> list[str]:
    """The names of the apps, after refusing an app the pods could not run as configured:
    requests (cpu, memory) and a memory limit on every container, a fixed non-root UID and GID,
    absolute writable paths, probes as check_probes wants them. CPU limits are optional (they
    throttle; requests schedule)."""
    errors = []
    for app in apps or []:
        name = str(app.get("name", "?"))
        res = app.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        missing = [f"requests.{k}" for k in ("cpu", "memory") if not requests.get(k)]
        missing += ["limits.memory"] if not limits.get("memory") else []
        if missing:
            errors.append(f"{name}: resources need {', '.join(missing)}")
        for key in ("run_as_user", "run_as_group"):
            value = app.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                errors.append(f"{name}: {key} must be a non-root id (an integer above 0)")
        try:
            writable_volumes(app.get("writable_paths"), name)
        except AnsibleFilterError as exc:
            errors.append(str(exc).removeprefix("app_rollout: app "))
        errors += check_probes(app)
    if errors:
        raise AnsibleFilterError("app_rollout: the app list is refused - " + "; ".join(errors))
    return [str(a.get("name")) for a in apps or []]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "app_rollout_image": image_ref,
            "app_rollout_job_name": job_name,
            "app_rollout_deployment_state": deployment_state,
            "app_rollout_deployment_states": deployment_states,
            "app_rollout_job_state": job_state,
            "app_rollout_container_images": container_images,
            "app_rollout_pod_report": pod_report,
            "app_rollout_changed_since": changed_since,
            "app_rollout_writable_volumes": writable_volumes,
            "app_rollout_check_apps": check_apps,
            "app_rollout_current_pod_hashes": current_pod_hashes,
            "app_rollout_soak_restarts": soak_restarts,
        }
