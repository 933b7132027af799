#!/usr/bin/env bash
# Regenerates Sources/TPATCore/ONNX/Generated/onnx.pb.swift from proto/onnx.proto with protoc and
# protoc-gen-swift from swift-protobuf 1.39.0 (the version Package.swift pins). The output is
# committed; run this only after changing proto/onnx.proto.
#   PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift scripts/generate-proto.sh
# Without PROTOC_GEN_SWIFT it builds the plugin from the swift-protobuf checkout SwiftPM resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "error: protoc not found (apt-get install protobuf-compiler)" >&2; exit 2; }
plugin=${PROTOC_GEN_SWIFT:-}
if [ -z "$plugin" ]; then
  swift package resolve >/dev/null
  src=.build/checkouts/swift-protobuf
  (cd "$src" && swift build -c release --product protoc-gen-swift >&2)
  plugin=$src/.build/release/protoc-gen-swift
fi
out=Sources/TPATCore/ONNX/Generated
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
  --swift_out="$out" -I proto proto/onnx.proto
echo "generated $out/onnx.pb.swift"
