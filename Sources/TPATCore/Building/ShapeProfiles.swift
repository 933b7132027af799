import Foundation

/// One TensorRT optimization profile: per input, the min, opt and max shape (trtexec's
/// `--minShapes/--optShapes/--maxShapes`).
public struct ShapeProfile: Codable, Sendable, Equatable {
    public struct Bounds: Codable, Sendable, Equatable {
        public var min: [Int]
        public var opt: [Int]
        public var max: [Int]
        public init(min: [Int], opt: [Int], max: [Int]) { self.min = min; self.opt = opt; self.max = max }
    }
    public var shapes: [String: Bounds]
    public init(_ shapes: [String: Bounds]) { self.shapes = shapes }

    public func encode(to encoder: any Encoder) throws { try shapes.encode(to: encoder) }
    public init(from decoder: any Decoder) throws { shapes = try [String: Bounds](from: decoder) }

    /// Profiles from the flags as trtexec spells their values (`name:AxBxC,name2:D`): the k-th
    /// `--min-shapes`, `--opt-shapes` and `--max-shapes` make profile k. For an input named in a
    /// profile, a missing min or max is its opt (trtexec's rule); opt is required when min or max is given.
    /// Whether the names are inputs and the ranks match is checked by the builder.
    public static func parse(min: [String], opt: [String], max: [String]) throws(TPATError) -> [ShapeProfile] {
        let count = Swift.max(min.count, opt.count, max.count)
        var profiles: [ShapeProfile] = []
        for k in 0..<count {
            let lo = k < min.count ? try specs(min[k], flag: "--min-shapes") : [:]
            let mid = k < opt.count ? try specs(opt[k], flag: "--opt-shapes") : [:]
            let hi = k < max.count ? try specs(max[k], flag: "--max-shapes") : [:]
            var shapes: [String: Bounds] = [:]
            for name in Set(lo.keys).union(mid.keys).union(hi.keys) {
                guard let o = mid[name] else {
                    throw TPATError(
                        .input, "profile \(k): \(name.debugDescription) has no --opt-shapes (give opt, or opt alone for a fixed shape)")
                }
                let b = Bounds(min: lo[name] ?? o, opt: o, max: hi[name] ?? o)
                guard b.min.count == o.count, b.max.count == o.count else {
                    throw TPATError(.input, "profile \(k): the min, opt and max shapes of \(name.debugDescription) differ in rank")
                }
                guard zip(zip(b.min, b.opt), b.max).allSatisfy({ $0.0 <= $0.1 && $0.1 <= $1 }) else {
                    throw TPATError(.input, "profile \(k): \(name.debugDescription) needs min <= opt <= max in every dim")
                }
                shapes[name] = b
            }
            profiles.append(ShapeProfile(shapes))
        }
        return profiles
    }

    /// `name:AxBxC,name2:D`: the name is everything before the last ':' (names may hold ':').
    static func specs(_ text: String, flag: String) throws(TPATError) -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for item in text.split(separator: ",") {
            guard let colon = item.lastIndex(of: ":"), colon != item.startIndex else {
                throw TPATError(.input, "\(flag) takes name:AxBxC[,name2:...], not \(String(item).debugDescription)")
            }
            let name = String(item[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
            let dimsText = item[item.index(after: colon)...]
            var dims: [Int] = []
            if !dimsText.isEmpty {  // empty: a scalar input
                for d in dimsText.split(separator: "x", omittingEmptySubsequences: false) {
                    guard let v = Int(d), v >= 0 else {
                        throw TPATError(.input, "\(flag): \(String(dimsText).debugDescription) is not a shape (write it as 1x3x224x224)")
                    }
                    dims.append(v)
                }
            }
            guard result[name] == nil else { throw TPATError(.input, "\(flag) names \(name.debugDescription) twice") }
            result[name] = dims
        }
        return result
    }
}
