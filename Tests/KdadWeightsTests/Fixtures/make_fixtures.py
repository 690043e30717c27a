"""Makes the PyTorch checkpoint fixtures for KdadWeightsTests, once, with real torch.

    /work/peer-venv/bin/python Tests/KdadWeightsTests/Fixtures/make_fixtures.py

Writes, beside this script:
  checkpoint-zip.pth     torch.save default (zip) format
  checkpoint-legacy.pth  the same object with _use_new_zipfile_serialization=False (legacy stream)
  checkpoint-deflated.pth  checkpoint-zip.pth re-packed with deflate (the reader must inflate it to the same tensors)
  expected.safetensors   every tensor the Swift reader must find, contiguous, under its flattened name
                         (written by hand below, not by the safetensors package, so no extra dependency)

The object covers what the reader must handle: float32/float64/float16/bfloat16/int64/int32/int16/int8/
uint8/bool tensors, a 0-d tensor, an empty tensor, an nn.Parameter, a transposed view, a view with a storage
offset that shares its storage with another saved tensor, a strided slice, nested dicts, a list of tensors,
non-tensor leaves, and a wrapper dict ({"state_dict": ..., "epoch": ...}) around the state dict.
Deterministic: values come from arange/linspace and a seeded generator.
"""
import json
import os
import struct
from collections import OrderedDict

import zipfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
generator = torch.Generator().manual_seed(1234)

base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8 - 1  # shared storage for several views
state_dict = OrderedDict()
state_dict["conv.weight"] = torch.randn(4, 3, 2, 2, generator=generator)
state_dict["conv.bias"] = torch.nn.Parameter(torch.linspace(-1, 1, 4), requires_grad=False)
state_dict["bn.num_batches_tracked"] = torch.tensor(17, dtype=torch.int64)
state_dict["base"] = base
state_dict["rows_1_to_3"] = base[1:3]                # storage offset 6, contiguous
state_dict["transposed"] = base.t()                  # stride (1, 6)
state_dict["every_other_column"] = base[:, ::2]      # stride (6, 2)
state_dict["half"] = torch.tensor([1.0, -2.5, 65504.0, 6.1e-5, 0.0], dtype=torch.float16)
state_dict["bf16"] = torch.tensor([1.0, -3.0, 0.15625], dtype=torch.bfloat16)
state_dict["f64"] = torch.tensor([[1 / 3, -2.0e300]], dtype=torch.float64)
state_dict["i32"] = torch.tensor([-7, 2**31 - 1], dtype=torch.int32)
state_dict["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
state_dict["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
state_dict["u8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
state_dict["mask"] = torch.tensor([True, False, True])
state_dict["i64"] = torch.tensor([-(2**40), 2**40 + 3], dtype=torch.int64)
state_dict["empty"] = torch.zeros(0, 3)
state_dict["nested"] = {"inner.weight": torch.randn(2, 2, generator=generator), "deeper": {"x": torch.tensor([5, 6])}}
state_dict["heads"] = [torch.ones(2), torch.full((1, 2), 3.0)]
checkpoint = {"state_dict": state_dict, "epoch": 7, "config": {"lr": 0.1, "name": "fixture"}}

torch.save(checkpoint, os.path.join(here, "checkpoint-zip.pth"))
torch.save(checkpoint, os.path.join(here, "checkpoint-legacy.pth"), _use_new_zipfile_serialization=False)

with zipfile.ZipFile(os.path.join(here, "checkpoint-zip.pth")) as source, \
        zipfile.ZipFile(os.path.join(here, "checkpoint-deflated.pth"), "w", zipfile.ZIP_DEFLATED) as target:
    for info in source.infolist():
        entry = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        target.writestr(entry, source.read(info.filename))


def flatten(prefix, value, out):
    if isinstance(value, torch.Tensor):
        out[prefix] = value.detach().contiguous()
    elif isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, item, out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            flatten(f"{prefix}.{index}" if prefix else str(index), item, out)


expected = OrderedDict()
flatten("", state_dict, expected)
dtype_names = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
header, blobs, offset = {}, [], 0
header["__metadata__"] = {"order": json.dumps(list(expected.keys()))}
for name, tensor in expected.items():
    # Raw little-endian bytes via a uint8 view of the contiguous tensor (no numpy needed).
    raw = bytes(tensor.reshape(-1).view(torch.uint8).tolist()) if tensor.numel() else b""
    header[name] = {"dtype": dtype_names[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
encoded = json.dumps(header, separators=(",", ":")).encode()
encoded += b" " * ((8 - len(encoded) % 8) % 8)
with open(os.path.join(here, "expected.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))
print(f"{len(expected)} tensors; torch {torch.__version__}")
