import Crypto
import Foundation

/// Kernel plans on disk, keyed by the node's canonical one-node model (op, attributes, dtypes,
/// shapes, constant inputs), the target, the TVM version and the plan format. Location:
/// $TPAT_CACHE_DIR, else $XDG_CACHE_HOME/tpat, else ~/.cache/tpat; plans live in plans/.
public struct PlanCache: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public static func standard() -> PlanCache {
        let env = ProcessInfo.processInfo.environment
        let base: URL
        if let dir = env["TPAT_CACHE_DIR"], !dir.isEmpty {
            base = URL(fileURLWithPath: dir)
        } else if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg).appendingPathComponent("tpat")
        } else {
            base = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/tpat")
        }
        return PlanCache(directory: base.appendingPathComponent("plans"))
    }

    /// The cache key of a node for a target and TVM version.
    public static func key(node: ExtractedNode, target: String, tvmVersion: String, planner: String = "", schedule: String = "dlight")
        -> String
    {
        var h = SHA256()
        h.update(data: node.canonicalBytes)
        h.update(data: Data("\u{0}\(target)\u{0}\(tvmVersion)\u{0}\(planner)\u{0}\(schedule)\u{0}plan-format-1".utf8))
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The Python package whose code makes the plans: every `*.py` file under it keys the cache.
    public static let plannerPackage = "python/tpat_bridge"

    /// A digest of the planner's own code: every `*.py` file under `plannerPackage` (`__pycache__`
    /// folders left out), as sorted relative paths and contents, so a changed, added, removed or
    /// renamed module never serves plans made by an older planner. There is no list to keep up.
    public static func plannerRevision(root: URL) -> String {
        let package = root.appendingPathComponent(plannerPackage)
        var h = SHA256()
        for f in pythonSources(in: package) {
            h.update(data: Data(f.utf8))
            h.update(data: Data([0]))
            let bytes = (try? Data(contentsOf: package.appendingPathComponent(f))) ?? Data()
            h.update(data: Data("\(bytes.count)".utf8))
            h.update(data: Data([0]))
            h.update(data: bytes)
        }
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// The `*.py` files under `folder` (relative paths, sorted), `__pycache__` folders skipped.
    static func pythonSources(in folder: URL) -> [String] {
        let fm = FileManager.default
        guard let walk = fm.enumerator(atPath: folder.path) else { return [] }
        var files: [String] = []
        while let f = walk.nextObject() as? String {
            let name = (f as NSString).lastPathComponent
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: folder.appendingPathComponent(f).path, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                if name == "__pycache__" { walk.skipDescendants() }
                continue
            }
            if name.hasSuffix(".py") { files.append(f) }
        }
        return files.sorted()
    }

    /// A digest of every file in a folder (a MetaSchedule database), names and contents.
    public static func digest(folder: URL) -> String {
        var h = SHA256()
        let fm = FileManager.default
        let files = (fm.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []).sorted()
        for f in files {
            let u = folder.appendingPathComponent(f)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: u.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            h.update(data: Data(f.utf8))
            h.update(data: (try? Data(contentsOf: u)) ?? Data())
        }
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    func url(_ key: String) -> URL { directory.appendingPathComponent("\(key).json") }

    /// One cache file: the plan with the key it was stored under and the digests of the node it
    /// was planned for and of the plan itself. The cache is a hint, never trusted as code: an entry
    /// whose key, node or plan digest does not match, that does not decode strictly, or that fails
    /// `KernelPlan.validate` is ignored (and replaced by a fresh plan).
    struct Entry: Codable {
        var format: String
        var key: String
        var nodeDigest: String
        var planDigest: String
        var plan: KernelPlan
        static let currentFormat = "tpat-plan-cache-2"
        enum CodingKeys: String, CodingKey { case format, key, nodeDigest = "node_digest", planDigest = "plan_digest", plan }
    }

    static func sha256(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    static func canonical(_ plan: KernelPlan) -> Data? {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try? e.encode(plan)
    }

    /// Why a cache file is not used (nil: no file); the caller re-plans either way.
    public enum Rejection: Error, Equatable, Sendable {
        case unreadable, corrupt, keyMismatch, nodeMismatch, planDigestMismatch, invalidPlan(String)
    }

    /// The plan cached under `key` for `node`, or why there is none usable.
    public func lookup(_ key: String, node: ExtractedNode) -> Result<KernelPlan, Rejection>? {
        let file = url(key)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        guard let data = try? Data(contentsOf: file), data.count < 256 << 20 else { return .failure(.unreadable) }
        guard let entry = try? JSONDecoder().decode(Entry.self, from: data), entry.format == Entry.currentFormat else {
            return .failure(.corrupt)
        }
        guard entry.key == key else { return .failure(.keyMismatch) }
        guard entry.nodeDigest == Self.sha256(node.canonicalBytes) else { return .failure(.nodeMismatch) }
        guard let bytes = Self.canonical(entry.plan), Self.sha256(bytes) == entry.planDigest else { return .failure(.planDigestMismatch) }
        do throws(TPATError) { try entry.plan.validate() } catch { return .failure(.invalidPlan(error.message)) }
        return .success(entry.plan)
    }

    /// The usable plan cached under `key` for `node`; a corrupt or mismatched entry is removed.
    public func load(_ key: String, node: ExtractedNode) -> KernelPlan? {
        switch lookup(key, node: node) {
        case .success(let plan)?: return plan
        case .failure?: try? FileManager.default.removeItem(at: url(key)); return nil
        case nil: return nil
        }
    }

    /// Stores `plan` for `node` under `key`: written to a temporary file, then renamed into place.
    public func store(_ plan: KernelPlan, key: String, node: ExtractedNode) throws(TPATError) {
        guard let bytes = Self.canonical(plan) else { throw TPATError(.io, "cannot encode plan") }
        let entry = Entry(
            format: Entry.currentFormat, key: key, nodeDigest: Self.sha256(node.canonicalBytes),
            planDigest: Self.sha256(bytes), plan: plan)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        do {
            let data = try e.encode(entry)
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try data.write(to: url(key), options: .atomic)
        } catch {
            throw TPATError(.io, "cannot write the plan cache entry \(url(key).path): \(error.localizedDescription)")
        }
    }
}
