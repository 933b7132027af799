import Foundation

/// Reads the values of small constant tensors (axes, K, depth, zero points) whichever field of
/// TensorProto holds them.
public enum TensorValues {
    /// The number of elements its dims give (1 for a scalar); nil for a negative dim or overflow.
    public static func elementCount(_ t: Onnx_TensorProto) -> Int? {
        var n = 1
        for d in t.dims {
            guard d >= 0, let v = Int(exactly: d) else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: v)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Bytes per element of the fixed-size types TPAT reads; nil for others (strings, sub-byte types).
    public static func elementSize(_ type: ONNXDataType) -> Int? {
        switch type {
        case .double, .int64, .uint64, .complex64: 8
        case .float, .int32, .uint32: 4
        case .int16, .uint16, .float16, .bfloat16: 2
        case .int8, .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0: 1
        case .complex128: 16
        default: nil
        }
    }

    /// The bytes the tensor's dims and type call for (nil when unknown or too large).
    public static func byteSize(_ t: Onnx_TensorProto) -> Int? {
        guard let type = ONNXDataType(rawValue: t.dataType), let size = elementSize(type), let count = elementCount(t) else { return nil }
        let (n, o) = count.multipliedReportingOverflow(by: size)
        return o ? nil : n
    }

    /// Why the tensor's data does not fit its type and dims, or nil when it does (or when TPAT
    /// does not read that type). Data that does not fit is never read.
    public static func payloadProblem(_ t: Onnx_TensorProto) -> String? {
        guard let count = elementCount(t) else { return "dims \(t.dims) are negative or too large" }
        guard t.dataLocation != .external, let type = ONNXDataType(rawValue: t.dataType) else { return nil }
        let size: Int
        let values: Int
        switch type {
        case .float: size = 4; values = t.floatData.count
        case .double: size = 8; values = t.doubleData.count
        case .int64: size = 8; values = t.int64Data.count
        case .uint64: size = 8; values = t.uint64Data.count
        case .uint32: size = 4; values = t.uint64Data.count
        case .int32: size = 4; values = t.int32Data.count
        case .int16, .uint16, .float16, .bfloat16: size = 2; values = t.int32Data.count
        case .int8, .uint8, .bool: size = 1; values = t.int32Data.count
        default: return nil
        }
        if !t.rawData.isEmpty {
            let (need, o) = count.multipliedReportingOverflow(by: size)
            return !o && t.rawData.count == need
                ? nil : "\(t.rawData.count) bytes of data, its type and shape need \(o ? "too many" : "\(need)")"
        }
        return values == count ? nil : "\(values) values, its shape needs \(count)"
    }

    /// Integer view of an integer or bool tensor; nil for other types or unreadable data.
    public static func integers(_ t: Onnx_TensorProto) -> [Int64]? {
        guard let type = ONNXDataType(rawValue: t.dataType), payloadProblem(t) == nil else { return nil }
        if !t.rawData.isEmpty {
            let bytes = [UInt8](t.rawData)
            func read<T: FixedWidthInteger>(_: T.Type) -> [Int64]? {
                let size = MemoryLayout<T>.size
                guard bytes.count % size == 0 else { return nil }
                return stride(from: 0, to: bytes.count, by: size).map { o in
                    var v: T = 0
                    for k in 0..<size { v |= T(truncatingIfNeeded: bytes[o + k]) << (8 * k) }
                    return Int64(truncatingIfNeeded: v)
                }
            }
            switch type {
            case .int64: return read(Int64.self)
            case .uint64: return read(UInt64.self)
            case .int32: return read(Int32.self)
            case .uint32: return read(UInt32.self)
            case .int16: return read(Int16.self)
            case .uint16: return read(UInt16.self)
            case .int8: return read(Int8.self)
            case .uint8, .bool: return read(UInt8.self)
            default: return nil
            }
        }
        switch type {
        case .int64: return t.int64Data
        case .uint64, .uint32: return t.uint64Data.map { Int64(truncatingIfNeeded: $0) }
        case .int32, .int16, .int8, .uint16, .uint8, .bool: return t.int32Data.map(Int64.init)
        default: return nil
        }
    }

    /// Floating view of a float tensor (fp32/fp64 only; fp16 via raw bytes is decoded too).
    public static func doubles(_ t: Onnx_TensorProto) -> [Double]? {
        guard let type = ONNXDataType(rawValue: t.dataType), payloadProblem(t) == nil else { return nil }
        if !t.rawData.isEmpty {
            let bytes = [UInt8](t.rawData)
            switch type {
            case .float:
                guard bytes.count % 4 == 0 else { return nil }
                return stride(from: 0, to: bytes.count, by: 4).map { o in
                    Double(
                        Float(
                            bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3])
                                << 24))
                }
            case .double:
                guard bytes.count % 8 == 0 else { return nil }
                return stride(from: 0, to: bytes.count, by: 8).map { o in
                    var v: UInt64 = 0
                    for k in 0..<8 { v |= UInt64(bytes[o + k]) << (8 * k) }
                    return Double(bitPattern: v)
                }
            case .float16, .bfloat16:
                guard bytes.count % 2 == 0 else { return nil }
                return stride(from: 0, to: bytes.count, by: 2).map { o in
                    let bits = UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
                    return type == .bfloat16 ? Double(Float(bitPattern: UInt32(bits) << 16)) : Double(Float16Bits.toFloat(bits))
                }
            default: return integers(t).map { $0.map(Double.init) }
            }
        }
        switch type {
        case .float: return t.floatData.map(Double.init)
        case .double: return t.doubleData
        case .float16, .bfloat16:
            return t.int32Data.map { bits in
                type == .bfloat16
                    ? Double(Float(bitPattern: UInt32(bits) << 16)) : Double(Float16Bits.toFloat(UInt16(truncatingIfNeeded: bits)))
            }
        default: return integers(t).map { $0.map(Double.init) }
        }
    }

    /// True when every element is zero (false/0/0.0); nil when the values cannot be read.
    public static func isAllZero(_ t: Onnx_TensorProto) -> Bool? {
        if let ints = integers(t) { return ints.allSatisfy { $0 == 0 } }
        if let ds = doubles(t) { return ds.allSatisfy { $0 == 0 } }
        return nil
    }

    /// The tensor's payload as little-endian raw bytes, from whichever typed field holds it.
    public static func rawBytes(of t: Onnx_TensorProto) -> Data? {
        if !t.rawData.isEmpty { return t.rawData }
        guard let type = ONNXDataType(rawValue: t.dataType) else { return nil }
        var out = Data()
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        switch type {
        case .float: t.floatData.forEach { append($0.bitPattern) }
        case .double: t.doubleData.forEach { append($0.bitPattern) }
        case .int64: t.int64Data.forEach { append($0) }
        case .uint64: t.uint64Data.forEach { append($0) }
        case .uint32: t.uint64Data.forEach { append(UInt32(truncatingIfNeeded: $0)) }
        case .int32: t.int32Data.forEach { append($0) }
        case .int16, .uint16, .float16, .bfloat16: t.int32Data.forEach { append(UInt16(truncatingIfNeeded: $0)) }
        case .int8, .uint8, .bool: t.int32Data.forEach { append(UInt8(truncatingIfNeeded: $0)) }
        default: return nil
        }
        return out
    }
}

/// IEEE half-precision decoding without relying on the platform's Float16 availability.
enum Float16Bits {
    static func toFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exp = UInt32((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            if mant == 0 { return Float(bitPattern: sign) }
            return (sign != 0 ? -1 : 1) * Float(mant) * powf(2, -24)
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }
}
