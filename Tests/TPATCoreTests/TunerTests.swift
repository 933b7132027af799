import Foundation
import Testing

@testable import TPATCore

/// The tune answer as python/tpat_bridge/tools/tune.py writes it (see docs/tuning.md), decoded by Tuner.
@Suite struct TunerAnswerTests {
    @Test func decodesCostModelAndBuilder() throws {
        let json = """
            {"work_dir": "/o/tuning/Gelu_1", "target": "sm_90", "lowering": "tvm",
             "tasks": [{"name": "gelu", "trials": 32, "best_us": 56.54, "records": 32},
                       {"name": "scatter", "trials": 0, "best_us": null, "records": 0, "skipped": "already scheduled (TPAT lowering)"}],
             "cost_model": "xgb", "builder": "local (16 workers)", "runner": "rpc (key h100 at tracker:9190)",
             "interrupted": false, "budget_exhausted": false}
            """
        let a = try JSONDecoder().decode(Tuner.Answer.self, from: Data(json.utf8))
        #expect(a.costModel == "xgb")
        #expect(a.builder == "local (16 workers)")
        #expect(a.runner == "rpc (key h100 at tracker:9190)")
        #expect(a.tasks.map(\.trials) == [32, 0] && a.tasks[0].bestUs == 56.54 && a.tasks[1].bestUs == nil)
        #expect(!a.interrupted)
    }

    @Test func builderIsOptional() throws {
        // nothing searched (null), and answers of bridges from before the field existed
        for extra in [#", "builder": null"#, ""] {
            let json = #"{"tasks": [], "cost_model": "random""# + extra + #", "interrupted": true}"#
            let a = try JSONDecoder().decode(Tuner.Answer.self, from: Data(json.utf8))
            #expect(a.builder == nil && a.runner == nil && a.costModel == "random" && a.interrupted)
        }
    }
}

/// `tpat tune --rpc-tracker HOST:PORT --rpc-key KEY [--rpc-workers N]` -> the request's "rpc" field.
@Suite struct TunerRPCRequestTests {
    private func encoded(_ rpc: Tuner.RPC?) throws -> [String: Any] {
        let req = Tuner.request(
            modelPath: "/o/plugins/P/P.onnx", target: "sm_90", workDir: "/o/tuning/P", trials: 8, timeBudgetS: nil, rpc: rpc)
        return try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(req)) as? [String: Any])
    }

    @Test func bothFlagsGiveTheRPCField() throws {
        let rpc = try #require(try Tuner.RPC.from(tracker: "tracker.example:9190", key: "h100", workers: 4))
        let json = try encoded(rpc)
        #expect(json["command"] as? String == "tune" && json["trials"] as? Int == 8)
        let field = try #require(json["rpc"] as? [String: Any])
        #expect(field["tracker"] as? String == "tracker.example:9190")
        #expect(field["key"] as? String == "h100")
        #expect(field["max_workers"] as? Int == 4)
        #expect(field.count == 3)
        // without --rpc-workers the bridge's default applies (the field is left out)
        let plain = try #require(try encoded(try Tuner.RPC.from(tracker: "[::1]:9190", key: "h100", workers: nil))["rpc"] as? [String: Any])
        #expect(plain["max_workers"] == nil && plain["tracker"] as? String == "[::1]:9190")
    }

    @Test func noFlagsNoField() throws {
        #expect(try Tuner.RPC.from(tracker: nil, key: nil, workers: nil) == nil)
        let json = try encoded(nil)
        #expect(json["rpc"] == nil && json["time_budget_s"] == nil)
    }

    @Test func badFlagCombinationsAreRefused() {
        let bad: [(String?, String?, Int?, String)] = [
            ("host:9190", nil, nil, "--rpc-key"),
            (nil, "h100", nil, "--rpc-tracker"),
            (nil, nil, 2, "--rpc-workers"),
            ("host", "h100", nil, "HOST:PORT"),
            (":9190", "h100", nil, "HOST:PORT"),
            ("host:0", "h100", nil, "HOST:PORT"),
            ("host:port", "h100", nil, "HOST:PORT"),
            ("host:9190", "", nil, "--rpc-key"),
            ("host:9190", "a:b", nil, "--rpc-key"),
            ("host:9190", "h100", 0, "--rpc-workers"),
        ]
        for (tracker, key, workers, mention) in bad {
            #expect(throws: TPATError.self) { try Tuner.RPC.from(tracker: tracker, key: key, workers: workers) }
            do {
                _ = try Tuner.RPC.from(tracker: tracker, key: key, workers: workers)
            } catch {
                #expect(error.kind == .input && error.message.contains(mention), "\(error.message)")
            }
        }
    }
}

/// The tactic list of a tuned plugin: what `tune` searches (the lowerings of its untuned tactics)
/// and how the re-planned tactics line up (Tuner.lowerings / Tuner.ordered, used by `tpat tune`
/// and by `tpat generate --tuning`).
@Suite struct TunerTacticListTests {
    private func plan(_ lowering: String, source: String, tuned: Bool = false) throws -> KernelPlan {
        let data = try Data(contentsOf: Repo.root.appendingPathComponent("tests/fixtures/plans/ScatterND_7a375313.plan.json"))
        var p = try KernelPlan.decode(data)
        p.lowering = lowering
        p.cudaSource = source
        p.tuningDatabase = tuned ? "ReduceMax_1" : nil
        return p
    }

    @Test func searchesTheLoweringsOfTheUntunedTactics() throws {
        let tpat = try plan("reduce", source: "tpat"), tvm = try plan(KernelPlan.tvmDefault, source: "tvm")
        #expect(Tuner.lowerings(of: [tpat, tvm]) == ["tpat", "tvm"])
        #expect(Tuner.lowerings(of: [tvm]) == ["tvm"])
        // an earlier tuned plan is no lowering of its own
        #expect(Tuner.lowerings(of: [try plan(KernelPlan.tvmDefault, source: "t", tuned: true), tpat, tvm]) == ["tpat", "tvm"])
        let req = Tuner.request(
            modelPath: "/o/plugins/P/P.onnx", target: "sm_90", workDir: "/o/tuning/P", trials: 8, timeBudgetS: nil, rpc: nil,
            lowerings: Tuner.lowerings(of: [tpat, tvm]))
        let json = try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(req)) as? [String: Any])
        #expect(json["lowering"] as? [String] == ["tpat", "tvm"])
    }

    @Test func tunedTVMTacticLeadsTheUntunedOnes() throws {
        let tpat = try plan("reduce", source: "tpat"), tvm = try plan(KernelPlan.tvmDefault, source: "tvm")
        // TPAT's re-plan found no record of its function (no database named); TVM's did
        let replanned = [try plan("reduce", source: "tpat"), try plan(KernelPlan.tvmDefault, source: "tvm tuned", tuned: true)]
        let out = Tuner.ordered(tuned: replanned, untuned: [tpat, tvm])
        #expect(out.map(\.cudaSource) == ["tvm tuned", "tpat", "tvm"])
        #expect(out[0].tuningDatabase == "ReduceMax_1" && !out[0].usesTPATLowering)
        #expect(out.dropFirst().allSatisfy { $0.tuningDatabase == nil })
    }

    @Test func bothTunedInTacticOrderAndDuplicatesDropped() throws {
        let tpat = try plan("reduce", source: "tpat"), tvm = try plan(KernelPlan.tvmDefault, source: "tvm")
        let both = [
            try plan("reduce", source: "tpat tuned", tuned: true), try plan(KernelPlan.tvmDefault, source: "tvm tuned", tuned: true),
        ]
        #expect(Tuner.ordered(tuned: both, untuned: [tpat, tvm]).map(\.cudaSource) == ["tpat tuned", "tvm tuned", "tpat", "tvm"])
        // a record that replays the default schedule gives the untuned kernel: no second copy
        let same = [try plan(KernelPlan.tvmDefault, source: "tvm", tuned: true)]
        #expect(Tuner.ordered(tuned: same, untuned: [tpat, tvm]).map(\.cudaSource) == ["tpat", "tvm"])
        // two lowerings' tuned plans with the same kernels: one tactic
        let twins = [try plan("reduce", source: "k", tuned: true), try plan(KernelPlan.tvmDefault, source: "k", tuned: true)]
        #expect(Tuner.ordered(tuned: twins, untuned: [tpat, tvm]).map(\.cudaSource) == ["k", "tpat", "tvm"])
        // re-tuning: the earlier tuned tactics of the plugin go, the new ones lead
        let old = try plan(KernelPlan.tvmDefault, source: "tvm tuned before", tuned: true)
        #expect(Tuner.ordered(tuned: both, untuned: [old, tpat, tvm]).map(\.cudaSource) == ["tpat tuned", "tvm tuned", "tpat", "tvm"])
        // nothing tuned: the untuned tactics as they were
        #expect(Tuner.ordered(tuned: [], untuned: [old, tpat, tvm]).map(\.cudaSource) == ["tpat", "tvm"])
    }
}
