import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process groups of the bridge requests now running and the temporary folders of this run,
/// so that SIGINT and SIGTERM end every Python (and its children) and remove the folders before
/// tpat exits. A timeout or a cancelled task ends one group through swift-subprocess's teardown.
public final class ChildProcesses: @unchecked Sendable {
    public static let shared = ChildProcesses()

    private let lock = NSLock()
    private var groups: Set<Int32> = []
    private var folders: Set<String> = []
    private var sources: [DispatchSourceSignal] = []

    private var stopping = false

    /// A new group while tpat is stopping is killed at once.
    func add(_ group: Int32) {
        lock.withLock {
            _ = groups.insert(group)
            if stopping { kill(-group, SIGKILL) }
        }
    }
    func remove(_ group: Int32) { lock.withLock { _ = groups.remove(group) } }

    /// True once `terminateAll` began: no new bridge process is started.
    public var isStopping: Bool { lock.withLock { stopping } }

    /// While a signal is being handled, the work in flight must not go on to write or exit on
    /// its own (a bridge call cut short would read as a node failure): park the caller until the
    /// handler exits the process with 128 + the signal.
    public func parkIfStopping() {
        guard isStopping else { return }
        while true { sleep(60) }
    }

    /// A temporary folder to remove if tpat is interrupted (the owner still removes it normally).
    /// Register it before creating it.
    public func addFolder(_ url: URL) { lock.withLock { _ = folders.insert(url.path) } }
    public func removeFolder(_ url: URL) { lock.withLock { _ = folders.remove(url.path) } }

    /// The process groups now registered (tests).
    public var runningGroups: Set<Int32> { lock.withLock { groups } }

    /// Stops new bridge processes, sends SIGTERM to every registered process group, SIGKILL to
    /// those left after `grace` seconds (and to any started meanwhile), and removes the
    /// registered folders.
    public func terminateAll(grace: TimeInterval = 2) {
        let g = lock.withLock {
            stopping = true; return groups
        }
        for pid in g { kill(-pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(grace)
        while Date() < deadline, lock.withLock({ groups }).contains(where: { kill(-$0, 0) == 0 }) { usleep(50_000) }
        lock.withLock { sweep() }
    }

    /// SIGKILL to every group, every folder removed. Called with the lock held.
    private func sweep() {
        for pid in groups { kill(-pid, SIGKILL) }
        for path in folders { try? FileManager.default.removeItem(atPath: path) }
    }

    /// SIGINT and SIGTERM: end the children, remove the folders, print one `error:` line and exit
    /// with 128 + the signal (130, 143). Idempotent.
    public func installSignalHandlers() {
        lock.withLock { () -> Void in
            guard sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { [self] in
                    terminateAll()
                    // Exit holding the lock: nothing registers a new folder or process after the sweep.
                    lock.lock()
                    sweep()
                    let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
                    FileHandle.standardError.write(Data("error: interrupted (\(name)); the Python bridge was stopped\n".utf8))
                    exit(128 + sig)
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}
