#!/usr/bin/env python3
"""Copy the engine-agnostic C++ client into the Unreal plugin and generate its gRPC code.

The plugin must be self-contained once copied into a project, so the client sources
(engine_bindings/cpp) and the code generated from protos/ live inside the AvatarForgeClient module:

  Source/AvatarForgeClient/Public/avatarforge/client.h
  Source/AvatarForgeClient/Private/Client/*.cpp, *.h
  Source/AvatarForgeClient/Private/Generated/avatarforge/v1/avatarforge.{pb,grpc.pb}.{h,cc}

Use the protoc and grpc_cpp_plugin of the SAME versions as the prebuilt libraries in
Source/ThirdParty/GrpcThirdParty (generated code only compiles against its own protobuf version).
Plain Python 3, no dependencies; runs on Windows, Linux and macOS.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CPP = REPO / "engine_bindings" / "cpp"
PROTO_ROOT = REPO / "protos"
PROTO = Path("avatarforge") / "v1" / "avatarforge.proto"


def sync(plugin: Path, protoc: str, grpc_plugin: str) -> list[Path]:
    module = plugin / "Source" / "AvatarForgeClient"
    if not module.is_dir():
        raise SystemExit(f"error: {module} is not the AvatarForgeClient module of the plugin")
    public = module / "Public" / "avatarforge"
    client = module / "Private" / "Client"
    generated = module / "Private" / "Generated"
    for d in (public, client, generated):
        # Start clean so files removed from the client do not linger in the plugin.
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    written = []
    for header in sorted((CPP / "include" / "avatarforge").glob("*.h")):
        written.append(Path(shutil.copy2(header, public / header.name)))
    for source in sorted((CPP / "src").iterdir()):
        if source.suffix in (".cpp", ".h"):
            written.append(Path(shutil.copy2(source, client / source.name)))

    cmd = [protoc, f"--proto_path={PROTO_ROOT}", f"--cpp_out={generated}", f"--grpc_out={generated}",
           f"--plugin=protoc-gen-grpc={grpc_plugin}", str(PROTO_ROOT / PROTO)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: protoc failed ({' '.join(cmd)}):\n{proc.stderr}")
    written += sorted(p for p in generated.rglob("*") if p.is_file())
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin", type=Path, default=HERE / "AvatarForge", help="the AvatarForge plugin directory")
    parser.add_argument("--protoc", default=shutil.which("protoc") or "protoc", help="protoc matching GrpcThirdParty")
    parser.add_argument("--grpc-cpp-plugin", default=shutil.which("grpc_cpp_plugin") or "grpc_cpp_plugin",
                        help="grpc_cpp_plugin matching GrpcThirdParty")
    args = parser.parse_args(argv)
    for path in sync(args.plugin.resolve(), args.protoc, args.grpc_cpp_plugin):
        print(path.relative_to(args.plugin.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
