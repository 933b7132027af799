import Foundation

/// The rules for OUT of `tpat generate`: what may be replaced, the marker that says a folder is
/// TPAT's, and the lock that keeps two runs out of one OUT.
public enum OutputFolder {
    /// Written into every OUT; `--force` replaces only a folder that holds it.
    public static let marker = ".tpat-output"

    public static func markerContents() -> Data { Data("{\"tool\": \"tpat generate\", \"format\": 1}\n".utf8) }

    static func real(_ url: URL) -> String { url.standardizedFileURL.resolvingSymlinksInPath().path }

    /// Throws unless `out` may receive a run's output: it does not exist, or it is an empty folder,
    /// or (with `force`) a folder an earlier run wrote. Never `/`, $HOME, the current folder, the
    /// model's folder or a folder holding the model, whatever the flags.
    public static func check(_ out: URL, force: Bool, modelPath: String) throws(TPATError) {
        let fm = FileManager.default
        let path = out.standardizedFileURL.path
        var st = stat()
        guard lstat(path, &st) == 0 else { return }  // does not exist: fine
        if st.st_mode & S_IFMT == S_IFLNK {
            throw TPATError(.input, "\(path) is a symbolic link: give the folder itself as the output")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw TPATError(.input, "\(path) exists and is not a folder") }
        let resolved = real(out)
        var forbidden: [(String, String)] = [
            ("/", "the root folder"), (real(URL(fileURLWithPath: fm.currentDirectoryPath)), "the current folder"),
        ]
        if let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty {
            forbidden.append((real(URL(fileURLWithPath: home)), "your home folder"))
        }
        forbidden.append((real(URL(fileURLWithPath: modelPath).deletingLastPathComponent()), "the model's folder"))
        for (p, what) in forbidden where p == resolved || p.hasPrefix(resolved == "/" ? "/" : resolved + "/") {
            throw TPATError(.input, "refusing to write into \(path): it is or holds \(what)")
        }
        let contents = (try? fm.contentsOfDirectory(atPath: path)) ?? ["?"]
        guard !contents.isEmpty else { return }
        guard force else { throw TPATError(.input, "\(path) exists and is not empty (use --force to replace it)") }
        guard contents.contains(marker) else {
            throw TPATError(.input, "refusing to replace \(path): no \(marker) in it, so it was not written by tpat generate")
        }
    }

    /// An exclusive lock on OUT for one run (flock on `.<OUT>.tpat-lock` beside it, released when
    /// the run ends or the process dies). A second run into the same OUT fails at once.
    public final class Lock: @unchecked Sendable {
        let fd: Int32
        let path: String

        public init(_ out: URL) throws(TPATError) {
            let out = out.standardizedFileURL
            let parent = out.deletingLastPathComponent()
            do { try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
                throw TPATError(.io, "cannot create \(parent.path): \(error.localizedDescription)")
            }
            path = parent.appendingPathComponent(".\(out.lastPathComponent).tpat-lock").path
            let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { throw TPATError(.io, "cannot create the lock \(path): \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                Foundation.close(fd)
                throw TPATError(
                    .input, "another tpat run is writing \(out.path) (lock \(path)); wait for it or choose another output folder")
            }
            // The lock file may have been removed by a run that just ended: ours must be the one on disk.
            var a = stat(), b = stat()
            guard fstat(fd, &a) == 0, stat(path, &b) == 0, a.st_ino == b.st_ino, a.st_dev == b.st_dev else {
                Foundation.close(fd)
                throw TPATError(.input, "another tpat run is writing \(out.path) (lock \(path) changed); try again")
            }
            self.fd = fd
        }

        deinit {
            unlink(path)
            Foundation.close(fd)
        }
    }
}
