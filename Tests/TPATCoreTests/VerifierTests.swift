import Testing

@testable import TPATCore

/// Parsing of what the check programs and compute-sanitizer print (lines as seen on the H100).
@Suite struct VerifierTests {
    @Test func checkCounts() {
        let out =
            "case 0 tactic 0 out0 float32 [3,4096]: max_abs 0 max_rel 0 bad 0/12288 (atol 0.0001 rtol 0.001) PASS\n4 passed, 1 failed\n"
        #expect(Verifier.counts(out) == (4, 1))
        #expect(Verifier.counts("no summary") == (0, 0))
    }

    @Test func sanitizerSummaries() {
        #expect(Verifier.sanitizerErrors("2 passed, 0 failed\n========= ERROR SUMMARY: 0 errors\n") == 0)
        #expect(Verifier.sanitizerErrors("========= ERROR SUMMARY: 3 errors\n") == 3)
        #expect(Verifier.sanitizerErrors("========= RACECHECK SUMMARY: 2 hazards displayed (1 errors, 1 warnings)\n") == 1)
        #expect(Verifier.sanitizerErrors("========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n") == 0)
        #expect(Verifier.sanitizerErrors("nothing") == nil)
    }
}
