import Foundation
import SwiftProtobuf

/// An ONNX model loaded into memory, with the tensors it keeps as external data read in.
///
/// `externalLocations` remembers, per tensor name, which file the tensor came from, so that
/// `save(to:)` writes those tensors back out as external data beside the new model.
public struct ONNXModel: Sendable {
    public var proto: Onnx_ModelProto
    /// Tensor name -> the file (relative to the model) it was read from. Only which tensors were
    /// external matters to `save(to:)`, which picks its own data file name.
    public var externalLocations: [String: String]

    public init(proto: Onnx_ModelProto, externalLocations: [String: String] = [:]) {
        self.proto = proto
        self.externalLocations = externalLocations
    }

    public var graph: Onnx_GraphProto {
        get { proto.graph }
        set { proto.graph = newValue }
    }

    /// The opset version imported for a domain ("" and "ai.onnx" are the default domain).
    public func opsetVersion(domain: String) -> Int64? {
        let wanted = domain == "ai.onnx" ? "" : domain
        return proto.opsetImport.first { ($0.domain == "ai.onnx" ? "" : $0.domain) == wanted }?.version
    }
}

// MARK: - Loading

extension ONNXModel {
    /// Loads and validates a model file. Every failure is a `TPATError` with a one-line message.
    public static func load(path: String) throws(TPATError) -> ONNXModel {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw TPATError(.input, "no such file: \(path)")
        }
        guard !isDir.boolValue else { throw TPATError(.input, "\(path) is a directory, not an ONNX model file") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TPATError(.input, "cannot read \(path): \(error.localizedDescription)")
        }
        return try load(data: data, baseDirectory: url.deletingLastPathComponent(), displayName: path)
    }

    /// Decodes a serialized model; external data is resolved relative to `baseDirectory`.
    public static func load(data: Data, baseDirectory: URL, displayName: String = "model") throws(TPATError) -> ONNXModel {
        guard !data.isEmpty else { throw TPATError(.model, "\(displayName) is empty, not an ONNX model") }
        var proto: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw TPATError(.model, "\(displayName) is not an ONNX model (protobuf decoding failed: \(error))")
        }
        try validate(proto, displayName: displayName)
        var locations: [String: String] = [:]
        try resolveExternalData(in: &proto.graph, baseDirectory: baseDirectory, locations: &locations, displayName: displayName)
        return ONNXModel(proto: proto, externalLocations: locations)
    }

    static func validate(_ proto: Onnx_ModelProto, displayName: String) throws(TPATError) {
        guard proto.irVersion > 0, proto.hasGraph else {
            throw TPATError(.model, "\(displayName) is not an ONNX model (no ir_version or no graph)")
        }
        guard !proto.opsetImport.isEmpty else {
            throw TPATError(.model, "\(displayName) is not a valid ONNX model (no opset_import)")
        }
        guard !proto.graph.node.isEmpty else {
            throw TPATError(.model, "\(displayName) has an empty graph (no nodes)")
        }
        if let bad = proto.graph.node.firstIndex(where: { $0.opType.isEmpty }) {
            throw TPATError(.model, "\(displayName) is not a valid ONNX model (node \(bad) has no op_type)")
        }
        // Checked before anything reads or rewrites the graph (node names are made unique by
        // GraphIndex instead: see GraphIndex.nodeName).
        if let problem = GraphIndex.structuralProblem(proto.graph) {
            throw TPATError(.model, "\(displayName) is not a valid ONNX graph: \(problem)")
        }
    }

    /// Reads every EXTERNAL tensor (initializers, sparse tensors and tensor attributes, subgraphs
    /// included) into memory, under the rules of `ExternalDataReader`.
    static func resolveExternalData(
        in graph: inout Onnx_GraphProto, baseDirectory: URL,
        locations: inout [String: String], displayName: String
    ) throws(TPATError) {
        var reader = ExternalDataReader(base: baseDirectory, displayName: displayName)
        defer { reader.close() }
        try ExternalDataReader.forEachTensor(in: &graph) { (t: inout Onnx_TensorProto) throws(TPATError) in
            guard t.dataLocation == .external else { return }
            let location = try reader.read(into: &t)
            locations[t.name] = location
        }
    }
}

/// Reads external tensor data without trusting the model: the file must be inside the model's
/// folder (relative path, no `..`, no symbolic link on any component, a regular file: a FIFO or a
/// device is refused before it is opened for reading), offset + length must lie inside the file,
/// and the tensors together may not read more bytes from a file than it holds (overlapping
/// tensors are refused), so reading is bounded by the size of the files on disk.
struct ExternalDataReader {
    let base: URL
    let displayName: String
    /// Per file (device, inode): its size and the bytes the tensors took from it so far.
    private var files: [String: (fd: Int32, size: UInt64, taken: UInt64)] = [:]

    init(base: URL, displayName: String) { self.base = base; self.displayName = displayName }

    func fail(_ t: Onnx_TensorProto, _ why: String) -> TPATError {
        TPATError(.model, "\(displayName): external data of tensor '\(t.name)': \(why)")
    }

    /// Reads the tensor's bytes into `raw_data`, clears its external-data fields, returns the location.
    mutating func read(into t: inout Onnx_TensorProto) throws(TPATError) -> String {
        var entries: [String: String] = [:]
        for e in t.externalData {
            guard entries[e.key] == nil else { throw fail(t, "key '\(e.key)' is given twice") }
            entries[e.key] = e.value
        }
        guard let location = entries["location"], !location.isEmpty else { throw fail(t, "no location") }
        let parts = location.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !location.hasPrefix("/"), !location.contains("\\"), !location.contains("\0"), !parts.isEmpty,
            !parts.contains("..")
        else {
            throw fail(t, "location '\(location)' is outside the model's folder")
        }
        // Every component: no symbolic link; folders on the way, a regular file at the end.
        var path = base.path
        for (k, part) in parts.enumerated() {
            path += "/" + part
            var st = stat()
            guard lstat(path, &st) == 0 else { throw fail(t, "file '\(location)' is missing") }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFLNK { throw fail(t, "'\(location)' goes through a symbolic link") }
            if k < parts.count - 1 {
                guard kind == S_IFDIR else { throw fail(t, "'\(location)' is not a path to a file") }
            } else {
                guard kind == S_IFREG else { throw fail(t, "'\(location)' is not a regular file") }
            }
        }
        func number(_ key: String) throws(TPATError) -> UInt64? {
            guard let text = entries[key] else { return nil }
            guard let v = UInt64(text) else { throw fail(t, "\(key) '\(text)' is not a byte count") }
            return v
        }
        let offset = try number("offset") ?? 0
        let wantedLength = try number("length")
        // Open without following a link and without blocking, then check what was opened.
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw fail(t, "cannot open '\(location)': \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            Foundation.close(fd)
            throw fail(t, "'\(location)' is not a regular file")
        }
        let id = "\(st.st_dev):\(st.st_ino)"
        if files[id] != nil {
            Foundation.close(fd)
        } else {
            files[id] = (fd, UInt64(max(0, st.st_size)), 0)
        }
        let file = files[id]!
        let length = wantedLength ?? (file.size >= offset ? file.size - offset : 0)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, offset <= file.size, end <= file.size else {
            throw fail(t, "offset \(offset) + length \(length) is past the end of '\(location)' (\(file.size) bytes)")
        }
        if let expected = TensorValues.byteSize(t), UInt64(expected) != length {
            throw fail(t, "\(length) bytes in '\(location)', but its type and dims need \(expected)")
        }
        guard file.taken + length <= file.size else {
            throw fail(t, "the tensors read more bytes from '\(location)' than its \(file.size) (overlapping external data)")
        }
        files[id]!.taken += length
        var data = Data(count: Int(length))
        let got = data.withUnsafeMutableBytes { buf -> Int in
            var done = 0
            while done < buf.count {
                let n = pread(file.fd, buf.baseAddress! + done, buf.count - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            return done
        }
        guard got == Int(length) else { throw fail(t, "cannot read \(length) bytes of '\(location)'") }
        t.rawData = data
        t.dataLocation = .default
        t.externalData = []
        return location
    }

    func close() { for f in files.values { Foundation.close(f.fd) } }

    /// Calls `body` on every tensor of the graph: initializers, sparse initializers, tensor and
    /// sparse-tensor attributes, subgraphs.
    static func forEachTensor(
        in graph: inout Onnx_GraphProto,
        _ body: (inout Onnx_TensorProto) throws(TPATError) -> Void
    ) throws(TPATError) {
        func sparse(_ s: inout Onnx_SparseTensorProto) throws(TPATError) {
            if s.hasValues { try body(&s.values) }
            if s.hasIndices { try body(&s.indices) }
        }
        for i in graph.initializer.indices { try body(&graph.initializer[i]) }
        for i in graph.sparseInitializer.indices { try sparse(&graph.sparseInitializer[i]) }
        for n in graph.node.indices {
            for a in graph.node[n].attribute.indices {
                if graph.node[n].attribute[a].hasT { try body(&graph.node[n].attribute[a].t) }
                for k in graph.node[n].attribute[a].tensors.indices { try body(&graph.node[n].attribute[a].tensors[k]) }
                if graph.node[n].attribute[a].hasSparseTensor { try sparse(&graph.node[n].attribute[a].sparseTensor) }
                for k in graph.node[n].attribute[a].sparseTensors.indices { try sparse(&graph.node[n].attribute[a].sparseTensors[k]) }
                if graph.node[n].attribute[a].hasG { try forEachTensor(in: &graph.node[n].attribute[a].g, body) }
                for g in graph.node[n].attribute[a].graphs.indices { try forEachTensor(in: &graph.node[n].attribute[a].graphs[g], body) }
            }
        }
    }
}

// MARK: - Saving

extension ONNXModel {
    /// Serializes the model; tensors that were external are written to ONE data file beside
    /// `url` whose name TPAT chooses (`<model file name>.data`, offsets 4096-aligned as onnx
    /// does): never a name read from the input, so a crafted `location` cannot overwrite outputs.
    /// Writes go to temporary files that are renamed into place at the end, so a failure leaves
    /// nothing half written.
    public func save(to url: URL) throws(TPATError) {
        var proto = self.proto
        var files: [String: Data] = [:]
        if !externalLocations.isEmpty {
            externalize(graph: &proto.graph, files: &files, dataFile: Self.dataFileName(for: url))
        }
        let bytes: Data
        do { bytes = try proto.serializedBytes() } catch {
            throw TPATError(.io, "cannot serialize model: \(error)")
        }
        let dir = url.deletingLastPathComponent()
        var writes = files.map { (dir.appendingPathComponent($0.key), $0.value) }
        writes.append((url, bytes))
        try AtomicFiles.write(writes)
    }

    /// The external-data file of a model saved at `url`.
    public static func dataFileName(for url: URL) -> String { url.lastPathComponent + ".data" }

    private func externalize(graph: inout Onnx_GraphProto, files: inout [String: Data], dataFile location: String) {
        func move(_ t: inout Onnx_TensorProto) {
            guard externalLocations[t.name] != nil, t.dataLocation != .external else { return }
            var payload = t.rawData
            if payload.isEmpty, let raw = TensorValues.rawBytes(of: t) { payload = raw }
            var file = files[location] ?? Data()
            let pad = (4096 - file.count % 4096) % 4096
            file.append(Data(count: pad))
            let offset = file.count
            file.append(payload)
            files[location] = file
            t.clearRawData()
            t.floatData = []; t.int32Data = []; t.int64Data = []; t.doubleData = []; t.uint64Data = []
            t.dataLocation = .external
            t.externalData = [("location", location), ("offset", "\(offset)"), ("length", "\(payload.count)")].map {
                var e = Onnx_StringStringEntryProto(); e.key = $0.0; e.value = $0.1; return e
            }
        }
        for i in graph.initializer.indices { move(&graph.initializer[i]) }
        for n in graph.node.indices {
            for a in graph.node[n].attribute.indices {
                if graph.node[n].attribute[a].hasT { move(&graph.node[n].attribute[a].t) }
                if graph.node[n].attribute[a].hasG { externalize(graph: &graph.node[n].attribute[a].g, files: &files, dataFile: location) }
                for g in graph.node[n].attribute[a].graphs.indices {
                    externalize(graph: &graph.node[n].attribute[a].graphs[g], files: &files, dataFile: location)
                }
            }
        }
    }

    /// The model as bytes, all tensors inline.
    public func serializedInline() throws(TPATError) -> Data {
        do { return try proto.serializedBytes() } catch { throw TPATError(.io, "cannot serialize model: \(error)") }
    }
}

/// Writes several files so that either all appear or none: each goes to a temporary sibling first,
/// then all are renamed into place (rename(2): an existing file is replaced atomically; an
/// existing folder is never deleted, the write fails instead).
public enum AtomicFiles {
    public static func write(_ files: [(URL, Data)]) throws(TPATError) {
        let fm = FileManager.default
        for (url, _) in files {
            var st = stat()
            guard lstat(url.path, &st) == 0 else { continue }
            let kind = st.st_mode & S_IFMT
            if kind == S_IFDIR {
                throw TPATError(.io, "cannot write \(url.path): it is a folder (TPAT does not replace folders with files)")
            }
            if kind != S_IFREG && kind != S_IFLNK { throw TPATError(.io, "cannot write \(url.path): it is not a regular file") }
        }
        var staged: [(tmp: URL, final: URL)] = []
        do {
            for (url, data) in files {
                try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tpat-\(UUID().uuidString)")
                try data.write(to: tmp, options: .withoutOverwriting)
                staged.append((tmp, url))
            }
            for s in staged {
                guard rename(s.tmp.path, s.final.path) == 0 else {
                    throw TPATError(.io, "cannot write \(s.final.path): \(String(cString: strerror(errno)))")
                }
            }
        } catch {
            for s in staged { try? fm.removeItem(at: s.tmp) }
            if let e = error as? TPATError { throw e }
            throw TPATError(.io, "cannot write \(files.first?.0.path ?? "output"): \(error.localizedDescription)")
        }
    }
}
