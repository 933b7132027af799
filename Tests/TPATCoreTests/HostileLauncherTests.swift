import Foundation
import Testing

@testable import TPATCore

/// Issue 11, item 8: a generated tactic's host arithmetic is checked. A plan with symbolic dims
/// (grid = ceil(s0*s1 / 256), an int32 element count, workspace s0*4 bytes) is rendered, compiled
/// with nvcc into a host program and called with dims that overflow: output_dims, workspace_size
/// and enqueue return TPAT_BAD_DIMS (1) instead of launching a wrapped grid. No GPU is needed: the
/// checks run before any CUDA call (good dims reach the launch, which fails without a GPU (2) or
/// succeeds (0) on one).
@Suite struct HostileLauncherTests {
    static let planJSON = #"""
        {"format_version": 1, "tvm_version": "test", "target": {"sm": "sm_90", "tvm_target": {"kind": "cuda", "arch": "sm_90"}},
         "op_type": "Relu",
         "inputs": [{"name": "in0", "dtype": "float32", "shape": ["s0", "s1"], "shape_expr": [{"sym": "s0"}, {"sym": "s1"}]}],
         "outputs": [{"name": "out0", "dtype": "float32", "shape": ["s0", "s1"], "shape_expr": [{"sym": "s0"}, {"sym": "s1"}]}],
         "symbols": [{"name": "s0", "input": 0, "dim": 0}, {"name": "s1", "input": 0, "dim": 1}],
         "cuda_source": "extern \"C\" __global__ void __launch_bounds__(256) relu_kernel(float* __restrict__ out, float* __restrict__ in, float* __restrict__ tmp, int n) {\n  int i = blockIdx.x * 256 + threadIdx.x;\n  if (i < n) out[i] = in[i] > 0.f ? in[i] : 0.f;\n}\n",
         "compile_flags": ["-std=c++17"],
         "kernels": [{"name": "relu_kernel", "params": [{"name": "out", "type": "ptr", "dtype": "float32"}, {"name": "in", "type": "ptr", "dtype": "float32"},
                                                      {"name": "tmp", "type": "ptr", "dtype": "float32"}, {"name": "n", "type": "int32", "dtype": "int32"}]}],
         "steps": [{"kind": "launch", "kernel": "relu_kernel",
                    "args": [{"kind": "output", "index": 0}, {"kind": "input", "index": 0}, {"kind": "buffer", "id": 0},
                             {"kind": "scalar", "expr": {"op": "mul", "args": [{"sym": "s0"}, {"sym": "s1"}]}}],
                    "grid": [{"op": "floordiv", "args": [{"op": "add", "args": [{"op": "mul", "args": [{"sym": "s0"}, {"sym": "s1"}]}, {"int": 255}]}, {"int": 256}]}, {"int": 1}, {"int": 1}],
                    "block": [{"int": 256}, {"int": 1}, {"int": 1}], "dynamic_shared_memory_bytes": {"int": 0}}],
         "buffers": [{"id": 0, "dtype": "float32", "shape": [{"sym": "s0"}], "bytes": {"op": "mul", "args": [{"sym": "s0"}, {"int": 4}]}, "offset": {"int": 0}}],
         "workspace_alignment": 256, "workspace_bytes": {"op": "mul", "args": [{"sym": "s0"}, {"int": 4}]},
         "constants": [], "lowering": "tvm-default", "declined": [], "fixups": []}
        """#

    static let driver = #"""
        #include "../common/tpat_launcher_util.h"
        #include <cstdio>
        TPAT_DECLARE_TACTIC(tpat_Hostile_t0);
        int main()
        {
            static float buffer[64];
            int64_t const cases[][2] = {{4, 8}, {INT64_C(1) << 16, INT64_C(1) << 10}, {INT64_C(1) << 40, INT64_C(1) << 40},
                                        {INT64_C(1) << 20, INT64_C(1) << 20}, {INT64_C(1) << 62, 1}, {-1, 4}};
            for (auto const& c : cases)
            {
                tpat_dims in[1] = {};
                in[0].nb_dims = 2;
                in[0].d[0] = c[0];
                in[0].d[1] = c[1];
                tpat_dims out[1] = {};
                size_t ws = 0;
                void const* ins[1] = {buffer};
                void* outs[1] = {buffer};
                int o = tpat_Hostile_t0_output_dims(in, out);
                int w = tpat_Hostile_t0_workspace_size(in, &ws);
                int e = tpat_Hostile_t0_enqueue(in, ins, outs, buffer, 0);
                std::printf("%d %d %d\n", o, w, e);
            }
            return 0;
        }
        """#

    @Test func overflowingDimsGiveBadDimsBeforeAnyLaunch() async throws {
        guard let cuda = CUDAToolkit.locate(projectRoot: Repo.root) else {
            Issue.record("no nvcc (run make venv)")
            return
        }
        let plan = try KernelPlan.decode(Data(Self.planJSON.utf8))
        let node = ExtractedNode(
            sourceName: "node", opType: plan.opType, model: ONNXModel(proto: Onnx_ModelProto()),
            sourceInputs: [], sourceOutputs: [], symbols: [:], graphInputSources: [],
            graphOutputSources: [], demoted: [])
        let source = PluginSource(name: "Hostile", node: node, tactics: [plan], coveredNodes: ["node"])
        let renderer = LauncherRenderer(templates: try TemplateSet(directory: Repo.root.appendingPathComponent("plugin-runtime/templates")))
        let build = try temporaryDirectory()
        try FileManager.default.copyItem(
            at: Repo.root.appendingPathComponent("plugin-runtime/common"), to: build.appendingPathComponent("common"))
        let dir = build.appendingPathComponent("Hostile")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try renderer.kernels(source, tactic: 0).write(
            to: dir.appendingPathComponent("Hostile_tactic0_kernels.cuh"), atomically: true, encoding: .utf8)
        try renderer.tactic(source, tactic: 0).write(
            to: dir.appendingPathComponent("Hostile_tactic0.cu"), atomically: true, encoding: .utf8)
        try renderer.header(source).write(to: dir.appendingPathComponent("Hostile_launcher.h"), atomically: true, encoding: .utf8)
        try Self.driver.write(to: dir.appendingPathComponent("main.cu"), atomically: true, encoding: .utf8)
        let compiled = try await Tool.run(
            cuda.nvcc.path, ["-arch=sm_90", "-std=c++17", "-w", "Hostile_tactic0.cu", "main.cu", "-o", "check"], directory: dir)
        try #require(compiled.status == 0, "\(compiled.output.suffix(3000))")
        let r = try await Tool.run(dir.appendingPathComponent("check").path, [], directory: dir)
        #expect(r.status == 0, "\(r.output)")
        let rows = r.output.split(whereSeparator: \.isNewline).map { $0.split(separator: " ").compactMap { Int($0) } }.filter {
            $0.count == 3
        }
        try #require(rows.count == 6, "\(r.output)")
        // 4x8 and 2^16 x 2^10: valid; enqueue reaches the launch (0 on a GPU, 2 without one).
        for k in [0, 1] { #expect(rows[k][0] == 0 && rows[k][1] == 0 && rows[k][2] != 1, "case \(k): \(rows[k])") }
        // 2^40 x 2^40: s0*s1 overflows int64 -> enqueue refuses (dims and workspace are fine).
        #expect(rows[2] == [0, 0, 1])
        // 2^20 x 2^20: 2^40 elements do not fit the kernel's int32 count, and the grid exceeds 2^31-1.
        #expect(rows[3] == [0, 0, 1])
        // 2^62 x 1: the workspace s0*4 overflows -> workspace_size and enqueue refuse.
        #expect(rows[4] == [0, 1, 1])
        // a negative dim: refused everywhere.
        #expect(rows[5] == [1, 1, 1])
    }
}
