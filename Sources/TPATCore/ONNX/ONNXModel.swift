import Foundation
import SwiftProtobuf

/// An ONNX model loaded into memory, with the tensors it keeps as external data read in.
///
/// `externalLocations` remembers, per tensor name, which file the tensor came from, so that
/// `save(to:)` writes those tensors back out as external data beside the new model.
public struct ONNXModel: Sendable {
    public var proto: Onnx_ModelProto
    /// Tensor name -> file name (relative to the model) it was stored in.
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
    }

    /// Reads every EXTERNAL tensor (initializers and tensor attributes, subgraphs included) into memory.
    static func resolveExternalData(in graph: inout Onnx_GraphProto, baseDirectory: URL,
                                    locations: inout [String: String], displayName: String) throws(TPATError) {
        for i in graph.initializer.indices {
            try resolve(&graph.initializer[i], baseDirectory: baseDirectory, locations: &locations, displayName: displayName)
        }
        for n in graph.node.indices {
            for a in graph.node[n].attribute.indices {
                if graph.node[n].attribute[a].hasT {
                    try resolve(&graph.node[n].attribute[a].t, baseDirectory: baseDirectory, locations: &locations, displayName: displayName)
                }
                if graph.node[n].attribute[a].hasG {
                    try resolveExternalData(in: &graph.node[n].attribute[a].g, baseDirectory: baseDirectory, locations: &locations, displayName: displayName)
                }
                for g in graph.node[n].attribute[a].graphs.indices {
                    try resolveExternalData(in: &graph.node[n].attribute[a].graphs[g], baseDirectory: baseDirectory, locations: &locations, displayName: displayName)
                }
            }
        }
    }

    static func resolve(_ tensor: inout Onnx_TensorProto, baseDirectory: URL,
                        locations: inout [String: String], displayName: String) throws(TPATError) {
        guard tensor.dataLocation == .external else { return }
        let entries = Dictionary(tensor.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let location = entries["location"], !location.isEmpty else {
            throw TPATError(.model, "\(displayName): tensor '\(tensor.name)' is external but names no location")
        }
        // Same rule as onnx.checker: the data file must stay inside the model's folder.
        if location.hasPrefix("/") || location.split(separator: "/").contains("..") {
            throw TPATError(.model, "\(displayName): tensor '\(tensor.name)' has external data outside the model's folder: \(location)")
        }
        let file = baseDirectory.appendingPathComponent(location)
        guard let handle = try? FileHandle(forReadingFrom: file) else {
            throw TPATError(.model, "\(displayName): external data file '\(location)' of tensor '\(tensor.name)' is missing")
        }
        defer { try? handle.close() }
        let offset = UInt64(entries["offset"] ?? "0") ?? 0
        let fileSize = (try? handle.seekToEnd()) ?? 0
        let length = entries["length"].flatMap { UInt64($0) } ?? (fileSize >= offset ? fileSize - offset : 0)
        guard offset <= fileSize, length <= fileSize - offset else {
            throw TPATError(.model, "\(displayName): external data file '\(location)' is too short for tensor '\(tensor.name)' (needs \(offset + length) bytes, has \(fileSize))")
        }
        do {
            try handle.seek(toOffset: offset)
            tensor.rawData = try handle.read(upToCount: Int(length)) ?? Data()
        } catch {
            throw TPATError(.model, "\(displayName): cannot read external data '\(location)': \(error.localizedDescription)")
        }
        tensor.dataLocation = .default
        tensor.externalData = []
        locations[tensor.name] = location
    }
}

// MARK: - Saving

extension ONNXModel {
    /// Serializes the model; tensors that were external are written back to their data files
    /// (offsets 4096-aligned, as onnx does), beside `url`. Writes go to temporary files that are
    /// renamed into place at the end, so a failure leaves nothing half written.
    public func save(to url: URL) throws(TPATError) {
        var proto = self.proto
        var files: [String: Data] = [:]
        if !externalLocations.isEmpty {
            externalize(graph: &proto.graph, files: &files)
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

    private func externalize(graph: inout Onnx_GraphProto, files: inout [String: Data]) {
        func move(_ t: inout Onnx_TensorProto) {
            guard let location = externalLocations[t.name], t.dataLocation != .external else { return }
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
                if graph.node[n].attribute[a].hasG { externalize(graph: &graph.node[n].attribute[a].g, files: &files) }
                for g in graph.node[n].attribute[a].graphs.indices { externalize(graph: &graph.node[n].attribute[a].graphs[g], files: &files) }
            }
        }
    }

    /// The model as bytes, all tensors inline.
    public func serializedInline() throws(TPATError) -> Data {
        do { return try proto.serializedBytes() } catch { throw TPATError(.io, "cannot serialize model: \(error)") }
    }
}

/// Writes several files so that either all appear or none: each goes to a temporary sibling first,
/// then all are renamed into place.
public enum AtomicFiles {
    public static func write(_ files: [(URL, Data)]) throws(TPATError) {
        var staged: [(tmp: URL, final: URL)] = []
        do {
            for (url, data) in files {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tpat-\(UUID().uuidString)")
                try data.write(to: tmp)
                staged.append((tmp, url))
            }
            for s in staged {
                if FileManager.default.fileExists(atPath: s.final.path) { try FileManager.default.removeItem(at: s.final) }
                try FileManager.default.moveItem(at: s.tmp, to: s.final)
            }
        } catch {
            for s in staged { try? FileManager.default.removeItem(at: s.tmp) }
            throw TPATError(.io, "cannot write \(files.first?.0.path ?? "output"): \(error.localizedDescription)")
        }
    }
}
