import FerryTestSupport
import Foundation
import XCTest

/// A `kill -9` armed for an exact moment: strace's fault injection sends the helper SIGKILL when one of its
/// threads enters the `occurrence`-th call of `syscalls` that names `path` (as an argument or through a
/// directory descriptor, strace's `-P`).
///
/// The commit phase lasts a few milliseconds (a symlink rename, the state write, the removal of a superseded
/// deployment, garbage collection), too short to hit with a timer, so the crash tests aim kills at its steps.
/// strace is an independent program, and the helper carries no test hook for it.
final class SyscallTrap {
    let child: Child
    let pid: pid_t

    /// What strace saw: the matching calls, the one it killed at last.
    let log: String

    init(pid: pid_t, path: String, syscalls: String, occurrence: Int = 1, log: String) throws {
        self.pid = pid
        self.log = log
        child = try Child(["strace", "-f", "-qq", "-o", log, "-p", "\(pid)", "-P", path,
                           "-e", "trace=\(syscalls)", "-e", "inject=\(syscalls):signal=SIGKILL:when=\(occurrence)"])
        let deadline = Date().addingTimeInterval(10)
        while !Self.everyThreadTraced(pid) {
            guard child.isRunning, Date() < deadline else {
                child.stop()
                throw TestbedError("strace did not attach to \(pid)")
            }
            usleep(5000)
        }
    }

    /// Whether every thread of `pid` has a tracer.
    static func everyThreadTraced(_ pid: pid_t) -> Bool {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"), !tasks.isEmpty
        else { return false }
        return tasks.allSatisfy { task in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("TracerPid:") })
            else { return false }
            return line.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespaces) != "0" } ?? false
        }
    }

    var seen: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Detaches if the trap did not fire (strace leaves its tracees running on SIGTERM).
    func disarm() {
        child.stop(signal: SIGTERM)
    }
}

/// The steps of a commit a kill can be aimed at, in the order the helper takes them.
struct CommitStep {
    var name: String
    var path: String
    var syscalls: String
    var occurrence: Int
    /// Whether the `installed/` link names the new deployment once the helper has died there.
    var switched: Bool

    /// The steps of an update of `ref` from `old` to `new` under the helper's state directory `root`.
    /// `superseded` is a deployment this commit removes and `garbage` a blob it collects, when there are any.
    static func all(root: String, ref: String, superseded: String?, garbage: String?) -> [CommitStep] {
        let linkDirectory = ("\(root)/installed/\(stateName(ref))" as NSString).deletingLastPathComponent
        let renames = "rename,renameat,renameat2"
        var steps = [
            // The new link is made beside the old one and renamed over it through a descriptor of their directory
            // (AtomicFile): killed before the rename (the old deployment stays active, a temporary link is left)
            // and at the directory's fsync after it (new link, state.json still old).
            CommitStep(name: "link rename", path: linkDirectory, syscalls: renames, occurrence: 1, switched: false),
            CommitStep(name: "link sync", path: linkDirectory, syscalls: "fsync", occurrence: 1, switched: true),
            // The new state.json is written beside the old one, through a descriptor of the state directory:
            // killed before its rename (the temporary file stays behind) and before the directory's fsync.
            CommitStep(name: "state rename", path: root, syscalls: renames, occurrence: 1, switched: true),
            CommitStep(name: "state sync", path: root, syscalls: "fsync", occurrence: 1, switched: true),
        ]
        if let superseded {
            // Half way through removing the deployment the update supersedes, and at its last rmdir.
            for n in [1, 3] {
                steps.append(CommitStep(name: "superseded removal \(n)", path: superseded, syscalls: "unlinkat",
                                        occurrence: n, switched: true))
            }
            steps.append(CommitStep(name: "superseded rmdir", path: (superseded as NSString).deletingLastPathComponent,
                                    syscalls: "unlinkat", occurrence: 1, switched: true))
        }
        if let garbage {
            // Blobs are removed with unlinkat through a descriptor of their directory, so the trap aims at it.
            steps.append(CommitStep(name: "garbage collection", path: (garbage as NSString).deletingLastPathComponent,
                                    syscalls: "unlinkat", occurrence: 1, switched: true))
        }
        return steps
    }
}
