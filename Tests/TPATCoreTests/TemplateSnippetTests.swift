import Foundation
import Mustache
import Testing

@testable import TPATCore

/// Snippet reference tests of the template partials (in the style of swift-openapi-generator's
/// snippet tests): each partial rendered over a small hand-built view model matches its reference
/// file in tests/fixtures/snippets. The whole files are GoldenSourceTests' (rendered, compared and
/// compiled). TPAT_UPDATE_GOLDEN=1 rewrites the references.
@Suite struct TemplateSnippetTests {
    typealias R = LauncherRenderer

    /// Renders `text` (a template that calls partials) with the project's templates as partials.
    static func render(_ text: String, _ view: Any) throws -> String {
        var library = try TemplateSet(directory: Repo.root.appendingPathComponent("plugin-runtime/templates")).library
        library.register(try MustacheTemplate(string: "{{%CONTENT_TYPE:TEXT}}\n" + text), named: "snippet")
        return try #require(library.render(view, withTemplate: "snippet"))
    }

    static func launch(_ n: Int, dynamicSmem: Bool = false) -> R.LaunchView {
        R.LaunchView(
            n: n, kernel: "k\(n)", grid: ["dx::floordiv(ovf, sym[0], INT64_C(256))", "INT64_C(1)", "INT64_C(1)"],
            block: ["INT64_C(256)", "INT64_C(1)", "INT64_C(1)"], smem: dynamicSmem ? "dx::mul(ovf, sym[0], INT64_C(4))" : "INT64_C(0)",
            dynamicSmem: dynamicSmem,
            scalars: [
                R.ScalarView(index: 1, expr: "sym[0]", cType: "int32_t"), R.ScalarView(index: 3, expr: "INT64_C(7)", cType: "int64_t"),
            ],
            args: [
                R.ArgView(index: 0, pointer: R.PointerView(input: 0)), R.ArgView(index: 1, scalar: R.ScalarType(cType: "int32_t")),
                R.ArgView(index: 2, pointer: R.PointerView(buffer: 2)), R.ArgView(index: 3, scalar: R.ScalarType(cType: "int64_t")),
                R.ArgView(index: 4, pointer: R.PointerView(output: 1)), R.ArgView(index: 5, pointer: R.PointerView(constant: 0)),
            ])
    }

    static func copy(_ n: Int) -> R.CopyView {
        R.CopyView(n: n, bytes: "dx::mul(ovf, sym[0], INT64_C(4))", src: R.PointerView(input: 1), dst: R.PointerView(buffer: 0))
    }

    static func step(depth: Int, launch: R.LaunchView? = nil, copy: R.CopyView? = nil, loop: R.LoopView? = nil) -> R.StepView {
        let pad = String(repeating: "    ", count: depth + 1)
        return R.StepView(pad: pad, inner: depth == 0 ? pad : pad + "    ", launch: launch, copy: copy, loop: loop)
    }

    /// A loop whose body has a launch, a copy and a loop of its own.
    static var loop: R.StepView {
        step(
            depth: 0,
            loop: R.LoopView(
                variable: "loop_0", begin: "INT64_C(0)", extent: "sym[1]",
                body: [
                    step(depth: 1, launch: launch(1, dynamicSmem: true)),
                    step(depth: 1, copy: copy(2)),
                    step(
                        depth: 1,
                        loop: R.LoopView(
                            variable: "loop_1", begin: "loop_0", extent: "INT64_C(2)", body: [step(depth: 2, launch: launch(3))])),
                ]))
    }

    static let snippets: [String: @Sendable () throws -> String] = [
        "launch_checks": { try render("{{#.launch}}\n{{> launch_checks}}\n{{/.launch}}\n", step(depth: 0, launch: launch(0))) },
        "launch": { try render("{{#.launch}}\n{{> launch}}\n{{/.launch}}\n", step(depth: 0, launch: launch(0, dynamicSmem: true))) },
        "copy_checks": { try render("{{#.copy}}\n{{> copy_checks}}\n{{/.copy}}\n", step(depth: 0, copy: copy(0))) },
        "copy": { try render("{{#.copy}}\n{{> copy}}\n{{/.copy}}\n", step(depth: 0, copy: copy(0))) },
        "loop": { try render("{{#.loop}}\n{{> loop}}\n{{/.loop}}\n", loop) },
        "step": {
            struct Steps { var steps: [R.StepView] }
            return try render(
                "{{#steps}}\n{{> step}}\n{{/steps}}\n",
                Steps(steps: [step(depth: 0, launch: launch(0)), step(depth: 0, copy: copy(1)), loop]))
        },
        "nested_step": {
            struct Steps { var steps: [R.StepView] }
            return try render(
                "{{#steps}}\n{{> nested_step}}\n{{/steps}}\n",
                Steps(steps: [step(depth: 1, launch: launch(0)), step(depth: 1, copy: copy(1))]))
        },
        "inline_pointer": {
            struct Pointers { var pointers: [R.PointerView] }
            return try render(
                "{{#pointers}}\n[{{> inline_pointer}}]\n{{/pointers}}\n",
                Pointers(pointers: [
                    R.PointerView(input: 0), R.PointerView(output: 1), R.PointerView(buffer: 2), R.PointerView(constant: 3),
                ]))
        },
        "kernels.cuh": {
            let with = R.KernelsView(
                name: "P_1", tvmVersion: "0.27", sm: "sm_90", tactic: 1, includes: ["#include <cuda_fp16.h>", "#include <cstdint>"],
                namespace: "tpat_P_1_t1_kernels", body: "static __global__ void k0(float* x) { x[0] = 1; }")
            var without = with
            without.includes = []
            return try render("{{> kernels.cuh}}", with) + "---\n" + (try render("{{> kernels.cuh}}", without))
        },
    ]

    @Test(arguments: snippets.keys.sorted())
    func partialMatchesItsReference(name: String) throws {
        let render = try #require(Self.snippets[name])
        let text = try render()
        let file = Repo.root.appendingPathComponent("tests/fixtures/snippets/\(name).txt")
        if ProcessInfo.processInfo.environment["TPAT_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: file)
        }
        let reference = try String(contentsOf: file, encoding: .utf8)
        #expect(text == reference, "snippet \(name) differs from tests/fixtures/snippets/\(name).txt (TPAT_UPDATE_GOLDEN=1 to accept)")
    }

    /// Every partial in plugin-runtime/templates has a snippet here.
    @Test func everyPartialHasASnippet() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Repo.root.appendingPathComponent("plugin-runtime/templates").path)
        let wholeFiles: Set<String> = ["launcher.cu", "launcher.h", "plugin.cpp", "plugin_specs.cpp", "tactic.cu"]
        for f in files where f.hasSuffix(".mustache") {
            let name = String(f.dropLast(".mustache".count))
            #expect(wholeFiles.contains(name) || Self.snippets[name] != nil, "partial \(name) has no snippet test")
        }
    }

    /// The project's CMakeLists.txt builds for the common four architectures by default, and for
    /// sm_90a alone when its kernels were planned for sm_90a (wgmma exists nowhere else).
    @Test(arguments: [("sm_90", "80;86;89;90"), ("sm_80", "80;86;89;90"), ("sm_90a", "90a")])
    func cmakeDefaultArchitectures(target: String, expected: String) throws {
        let text = try Generator.cmakeLists(
            sources: [], name: "tpat_m", runtime: Repo.root.appendingPathComponent("plugin-runtime"), target: target)
        #expect(text.contains("set(TPAT_CUDA_ARCHITECTURES \"\(expected)\" CACHE STRING"))
        #expect(Generator.defaultArchitectures(target: target) == expected)
    }
}
