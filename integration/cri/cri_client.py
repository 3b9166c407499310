"""Minimal CRI v1 client for the containerd integration harness (integration/src/cri.rs).

Usage: cri_client.py SOCKET COMMAND [ARGS...]
  wait-ready TIMEOUT_S [IMAGE]    poll until the runtime is ready and CRI knows IMAGE
  wait-conf CONFLIST_FILE TIMEOUT_S
                                  poll Status(verbose) until the CNI config containerd has loaded
                                  is byte-identical to CONFLIST_FILE
  run NAME NAMESPACE [CGROUP_PARENT]
                                  RunPodSandbox + PodSandboxStatus -> {"id": .., "ip": ..}
  stop-remove ID                  StopPodSandbox + RemovePodSandbox
  list                            ListPodSandbox -> {"ids": [..]}

Prints exactly one JSON object on stdout. Exit 0 on success; exit 1 with
{"error": {"rpc": .., "code": .., "details": ..}} when an RPC fails; exit 2 on a
usage error or timeout. Needs PyPI `container-runtime-interface-api` (see cri/setup.sh).
"""
import json
import sys
import time
import uuid

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as rpc

RPC_TIMEOUT_S = 60.0


class RpcFailed(Exception):
    def __init__(self, name, err):
        super().__init__(name)
        self.name = name
        self.err = err


def call(name, method, request, timeout=RPC_TIMEOUT_S):
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as err:
        raise RpcFailed(name, err) from None


def out(obj, code=0):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def wait_ready(rt, images, timeout_s, image):
    """Until the runtime is ready and (if given) CRI's image store knows `image`: ctr imports
    reach the CRI image cache asynchronously, and a sandbox image it does not know gets pulled."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            resp = rt.Status(pb.StatusRequest(), timeout=1.0)
            conds = {c.type: c.status for c in resp.status.conditions}
            if not conds.get("RuntimeReady"):
                last = "RuntimeReady not true: %r" % (conds,)
            elif image and not images.ImageStatus(
                    pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), timeout=1.0).image.id:
                last = "image %s not known to CRI yet" % image
            else:
                out({"conditions": conds})
        except grpc.RpcError as err:
            last = "%s: %s" % (err.code(), err.details())
        if time.monotonic() > deadline:
            out({"timeout": "CRI not ready after %.1fs: %s" % (timeout_s, last)}, 2)
        time.sleep(0.05)


def loaded_sources(resp):
    """Raw conflist texts containerd's CNI library currently has loaded (Status verbose info)."""
    info = json.loads(resp.info.get("cniconfig", "{}") or "{}")
    return [((n or {}).get("Config") or {}).get("Source", "") for n in info.get("Networks") or []]


def wait_conf(rt, path, timeout_s):
    with open(path, "r", encoding="utf-8") as f:
        want = f.read()
    deadline = time.monotonic() + timeout_s
    while True:
        resp = call("Status", rt.Status, pb.StatusRequest(verbose=True), timeout=2.0)
        conds = {c.type: (c.status, c.reason, c.message) for c in resp.status.conditions}
        if want in loaded_sources(resp) and conds.get("NetworkReady", (False,))[0]:
            out({"loaded": True})
        if time.monotonic() > deadline:
            out({"timeout": "conflist not loaded after %.1fs; NetworkReady=%r; loaded=%s"
                            % (timeout_s, conds.get("NetworkReady"), resp.info.get("cniconfig", ""))}, 2)
        time.sleep(0.02)


def run(rt, name, namespace, cgroup_parent=""):
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=str(uuid.uuid4()), attempt=0),
        hostname=name[:63],
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
    )
    sid = call("RunPodSandbox", rt.RunPodSandbox, pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    st = call("PodSandboxStatus", rt.PodSandboxStatus, pb.PodSandboxStatusRequest(pod_sandbox_id=sid))
    out({"id": sid, "ip": st.status.network.ip})


def stop_remove(rt, sid):
    call("StopPodSandbox", rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    call("RemovePodSandbox", rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    out({"removed": sid})


def list_ids(rt):
    items = call("ListPodSandbox", rt.ListPodSandbox, pb.ListPodSandboxRequest()).items
    out({"ids": [s.id for s in items]})


def main(argv):
    if len(argv) < 3:
        out({"usage": __doc__}, 2)
    sock, cmd, args = argv[1], argv[2], argv[3:]
    channel = grpc.insecure_channel("unix://" + sock)
    rt = rpc.RuntimeServiceStub(channel)
    images = rpc.ImageServiceStub(channel)
    try:
        if cmd == "wait-ready" and len(args) in (1, 2):
            wait_ready(rt, images, float(args[0]), args[1] if len(args) == 2 else "")
        elif cmd == "wait-conf" and len(args) == 2:
            wait_conf(rt, args[0], float(args[1]))
        elif cmd == "run" and len(args) in (2, 3):
            run(rt, *args)
        elif cmd == "stop-remove" and len(args) == 1:
            stop_remove(rt, args[0])
        elif cmd == "list" and not args:
            list_ids(rt)
        else:
            out({"usage": __doc__}, 2)
    except RpcFailed as e:
        out({"error": {"rpc": e.name, "code": str(e.err.code()), "details": e.err.details() or ""}}, 1)
    finally:
        channel.close()


if __name__ == "__main__":
    main(sys.argv)
