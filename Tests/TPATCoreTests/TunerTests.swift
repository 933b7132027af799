import Foundation
import Testing
@testable import TPATCore

/// The tune answer as python/tpat_bridge/tune.py writes it (see docs/tuning.md), decoded by Tuner.
@Suite struct TunerAnswerTests {
    @Test func decodesCostModelAndBuilder() throws {
        let json = """
        {"work_dir": "/o/tuning/Gelu_1", "target": "sm_90", "lowering": "tvm",
         "tasks": [{"name": "gelu", "trials": 32, "best_us": 56.54, "records": 32},
                   {"name": "scatter", "trials": 0, "best_us": null, "records": 0, "skipped": "already scheduled (TPAT lowering)"}],
         "cost_model": "xgb", "builder": "local (16 workers)", "interrupted": false, "budget_exhausted": false}
        """
        let a = try JSONDecoder().decode(Tuner.Answer.self, from: Data(json.utf8))
        #expect(a.costModel == "xgb")
        #expect(a.builder == "local (16 workers)")
        #expect(a.tasks.map(\.trials) == [32, 0] && a.tasks[0].bestUs == 56.54 && a.tasks[1].bestUs == nil)
        #expect(!a.interrupted)
    }

    @Test func builderIsOptional() throws {
        // nothing searched (null), and answers of bridges from before the field existed
        for extra in [#", "builder": null"#, ""] {
            let json = #"{"tasks": [], "cost_model": "random""# + extra + #", "interrupted": true}"#
            let a = try JSONDecoder().decode(Tuner.Answer.self, from: Data(json.utf8))
            #expect(a.builder == nil && a.costModel == "random" && a.interrupted)
        }
    }
}
