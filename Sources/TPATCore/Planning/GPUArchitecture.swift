import Foundation

/// The one spelling of a GPU architecture across plan, generate, build, engine and demo: a
/// compute capability written `90` or `sm_90` (also `sm90`, `SM_90`; an `a`/`f` suffix as in
/// `90a` is kept for CMake), lists separated by `;` or `,` ("80;86;89;90").
public struct GPUArchitecture: Hashable, Sendable, CustomStringConvertible {
    /// The number and suffix, as CMake's CUDA_ARCHITECTURES and TensorRT-RTX write it: "90", "90a".
    public let value: String

    /// `sm_90`: how TVM's target tags and the kernel planner name it.
    public var sm: String { "sm_\(value)" }
    public var description: String { value }
    /// The capability without suffix (90 for "90a").
    public var number: Int { Int(value.prefix { $0.isNumber }) ?? 0 }

    public init(parsing text: String) throws(TPATError) {
        var s = text.trimmingCharacters(in: .whitespaces).lowercased()
        if s.hasPrefix("sm_") { s.removeFirst(3) } else if s.hasPrefix("sm") { s.removeFirst(2) }
        let digits = s.prefix { $0.isNumber }
        let suffix = s.dropFirst(digits.count)
        guard (2...3).contains(digits.count), suffix.isEmpty || suffix == "a" || suffix == "f", Int(digits)! >= 50 else {
            throw TPATError(.input, "\(text.debugDescription) is not a GPU architecture (write it as 90 or sm_90)")
        }
        value = String(s)
    }

    /// One or more architectures: "90", "sm_89", "80;86;89;90", "sm_80,sm_90". Duplicates are dropped.
    public static func list(_ text: String) throws(TPATError) -> [GPUArchitecture] {
        var result: [GPUArchitecture] = []
        for part in text.split(whereSeparator: { $0 == ";" || $0 == "," }) where !part.trimmingCharacters(in: .whitespaces).isEmpty {
            let a = try GPUArchitecture(parsing: String(part))
            if !result.contains(a) { result.append(a) }
        }
        guard !result.isEmpty else { throw TPATError(.input, "no GPU architecture given (write it as 90 or sm_90)") }
        return result
    }

    /// Exactly one architecture, for commands that plan kernels for one GPU (plan, generate).
    public static func one(_ text: String, for command: String) throws(TPATError) -> GPUArchitecture {
        let all = try list(text)
        guard all.count == 1 else {
            throw TPATError(
                .input,
                "\(command) plans kernels for one architecture, not \(all.count) (\(all.map(\.value).joined(separator: ";"))); `tpat build --arch` compiles them for several"
            )
        }
        return all[0]
    }

    /// `list` joined the way CMake's CUDA_ARCHITECTURES takes it.
    public static func cmake(_ archs: [GPUArchitecture]) -> String { archs.map(\.value).joined(separator: ";") }
}
