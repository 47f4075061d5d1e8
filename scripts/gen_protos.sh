#!/usr/bin/env bash
# Regenerates seldon_routers/proto/*_pb2.py from protos/. The pinned protoc (grpcio-tools
# 1.62.3, protobuf 4.25 gencode) emits code that imports on every runtime the package
# claims (protobuf 4.25 to 7.x; tests/proto checks both ends), which newer protoc does not.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${GEN_PROTOS_VENV:-$PWD/.cache/protoc-grpcio-tools-1.62.3}"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q grpcio-tools==1.62.3; }
out="${GEN_PROTOS_OUT:-seldon_routers/proto}"
"$venv/bin/python" -m grpc_tools.protoc -Iprotos --python_out="$out" \
  protos/prediction.proto protos/tensorflow/core/framework/tensor.proto
mv "$out/tensorflow/core/framework/tensor_pb2.py" "$out/tensor_pb2.py"
rm -rf "$out/tensorflow"
# protoc writes imports by proto path; the generated modules live inside this package.
sed -i 's/^from tensorflow\.core\.framework import tensor_pb2/from seldon_routers.proto import tensor_pb2/' "$out/prediction_pb2.py"
echo "generated: $(ls $out/*_pb2.py | tr '\n' ' ')"
