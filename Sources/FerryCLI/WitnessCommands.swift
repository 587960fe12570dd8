import ArgumentParser
import FerryCore
import FerryFetch
import FerryLog
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `ferry witness serve`: a c2sp.org/tlog-witness on HTTP, so that two organisations can witness each other's logs.
struct WitnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "witness", abstract: "Run a transparency-log witness (c2sp.org/tlog-witness).",
        subcommands: [WitnessServeCommand.self])
}

struct WitnessServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve POST /add-checkpoint: cosign checkpoints that are consistent.",
        discussion: """
            Cosigns a checkpoint of a log named with --log only when it is consistent with the last one this \
            witness cosigned for that origin (kept in --state, written before the answer). Prints "listening on \
            http://HOST:PORT" once it accepts connections (port 0 picks a free port). Plain HTTP: put it behind \
            a TLS proxy to serve the Internet.
            """)

    @Option(help: "The witness's signer key (`ferry log keygen NAME --witness`).") var key: String
    @Option(help: "A log's verifier key file or string; repeat for each log this witness cosigns.")
    var log: [String] = []
    @Option(help: "The directory that keeps the latest cosigned checkpoint of each log.") var state: String
    @Option(help: "HOST:PORT to listen on.") var listen = "127.0.0.1:0"

    func validate() throws {
        if log.isEmpty { throw ValidationError("name at least one log (--log)") }
    }

    func run() async throws {
        let signer = try NoteSignerKey(try readSmallFile(key))
        let witness = try Witness(key: signer, logKeys: try log.map(loadVerifierKey), stateDirectory: state)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("--listen takes HOST:PORT")
        }
        let host = String(listen[..<colon])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(WitnessHandler(witness: witness))
                }
            }
            .bind(host: host, port: port).get()
        // Unbuffered: whoever started the witness waits for this line to know the port.
        FileHandle.standardOutput.write(Data("listening on http://\(host):\(channel.localAddress?.port ?? port)\n".utf8))
        try await channel.closeFuture.get()
    }
}

/// One connection: reads a request, answers `POST /add-checkpoint` with the witness, anything else with 404.
///
/// The witness's answer (a small fsync'd write) runs on the event loop: a witness handles a few requests a minute.
final class WitnessHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let witness: Witness
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false

    init(witness: Witness) {
        self.witness = witness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
            tooLarge = false
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > Witness.maxRequestSize {
                tooLarge = true
            } else {
                body.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            let response: Witness.Response
            if head.uri != "/add-checkpoint" {
                response = .text(404, "not found")
            } else if head.method != .POST {
                response = .text(405, "use POST")
            } else if tooLarge {
                response = .text(413, "request too large")
            } else {
                response = witness.addCheckpoint(Data(body.readableBytesView))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: "\(response.body.count)")
            let status = HTTPResponseStatus(statusCode: response.status)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status,
                                                                  headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            // The context may be used on its event loop only; the completion runs there.
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { bound.value.close(promise: nil) }
            }
            self.head = nil
        }
    }
}

/// `ferry log witness LAYOUT --witness URL... --witness-key VKEY...`: asks witnesses to cosign the log's checkpoint.
struct LogWitnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "witness", abstract: "Ask witnesses to cosign the log's checkpoint (c2sp.org/tlog-witness).",
        discussion: """
            Each witness gets the checkpoint with a consistency proof from the size it cosigned last (asked first \
            as 0; a 409 answer names its size, and the request is made again with the proof from there). Only \
            cosignatures that verify with a --witness-key are added to LAYOUT/log/checkpoint (a cosignature by a \
            known key that does not verify would make clients refuse the checkpoint). Exit status 1 when any \
            witness refused.
            """)

    @Argument(help: "The layout directory whose log/ to witness.") var layout: String
    @Option(help: "A witness's URL prefix (POST PREFIX/add-checkpoint); repeat for each.") var witness: [String] = []
    @Option(help: "A witness's verifier key file or string; repeat for each.") var witnessKey: [String] = []

    func validate() throws {
        if witness.isEmpty { throw ValidationError("name at least one witness (--witness)") }
        if witnessKey.isEmpty { throw ValidationError("give the witnesses' keys (--witness-key)") }
    }

    func run() async throws {
        let keys = try witnessKey.map(loadVerifierKey)
        let directory = try LogDirectory(path: layout + "/log")
        let original = try directory.readCheckpoint()
        let note = try SignedNote(original)
        let checkpoint = try Checkpoint(text: note.text)
        var added: [NoteSignature] = []
        var failures: [String] = []
        for url in witness {
            let prefix = Remote.withoutTrailingSlash(url)
            do {
                let signatures = try await cosign(prefix: prefix, note: note, original: original,
                                                  checkpoint: checkpoint, directory: directory, keys: keys)
                added += signatures
                print("\(prefix): cosigned \(checkpoint.origin) at size \(checkpoint.size) "
                    + "(\(signatures.map(\.name).joined(separator: ", ")))")
            } catch let error as FerryError {
                failures.append(error.message)
                printError(error.message)
            }
        }
        if !added.isEmpty { try directory.addCosignatures(added, to: note.text) }
        if !failures.isEmpty {
            throw FerryError.failed("\(failures.count) of \(witness.count) witnesses did not cosign")
        }
    }

    /// One witness: the request, a retry after 409, and the cosignatures of the answer that verify.
    func cosign(prefix: String, note: SignedNote, original: Data, checkpoint: Checkpoint, directory: LogDirectory,
                keys: [NoteVerifierKey]) async throws -> [NoteSignature] {
        var old: UInt64 = 0
        for _ in 0..<2 {
            let proof = old == 0 || old > checkpoint.size ? [] : try MerkleTree.consistencyProof(
                from: old, to: checkpoint.size, reader: directory.hashReader(treeSize: checkpoint.size))
            let response = try await HTTPTransport.shared.request(
                .POST, prefix + "/add-checkpoint", headers: [("Content-Type", "text/plain")],
                body: .bytes(Witness.requestBody(old: old, proof: proof, checkpoint: original)))
            switch response.status {
            case 200:
                let answer = try SignedNote(Data(note.text.utf8) + Data("\n".utf8) + response.body)
                let verified: [SignedNote.Verified]
                do {
                    verified = try answer.verify(by: keys)
                } catch let error as FerryError {
                    throw FerryError.untrusted("\(prefix): the cosignature does not verify (\(error.message))")
                }
                return answer.signatures.filter { signature in verified.contains { signature.isBy($0.key) } }
            case 409:
                let text = String(decoding: response.body.prefix(32), as: UTF8.self)
                guard let size = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), size != old else {
                    throw FerryError.failed("\(prefix): 409 without a usable size")
                }
                guard size <= checkpoint.size else {
                    throw FerryError.untrusted("\(prefix): it cosigned \(size) entries, more than this log's "
                        + "\(checkpoint.size): the log shrank or forked")
                }
                old = size
            default:
                let reason = String(decoding: response.body.prefix(300), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw FerryError.untrusted("\(prefix) refused the checkpoint: HTTP \(response.status): \(reason)")
            }
        }
        throw FerryError.failed("\(prefix): the witness's size kept changing")
    }
}
