using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// A safetensors file (8-byte little-endian header length, a JSON header, then raw little-endian bytes).
/// The header is read and checked when opened; tensors are read one at a time on request (lazy by tensor).
/// Checks follow the format's reference reader: header size capped, every dtype known, every offset inside
/// the data section, byte spans matching dtype x shape, and the data section covered without holes or overlaps.
/// </summary>
public sealed class SafetensorsFile
{
    /// <summary>Headers larger than this are refused before they are read (the format's reference reader uses 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    readonly long dataStart;

    public IEnumerable<string> Keys => Entries.Keys;

    SafetensorsFile(string path, Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path; Entries = entries; Metadata = metadata; this.dataStart = dataStart;
    }

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>The dtypes this reader and writer know, by their safetensors names.</summary>
    public static IReadOnlyCollection<string> KnownDTypes => DTypes.Keys;

    public static string DTypeName(ScalarType t) =>
        DTypes.FirstOrDefault(kv => kv.Value.Type == t).Key
        ?? throw new NotSupportedException($"safetensors: no dtype name for {t}");

    /// <summary>The TorchSharp type of a safetensors dtype name.</summary>
    public static ScalarType ScalarTypeOf(string dtype) =>
        DTypes.TryGetValue(dtype, out var d) ? d.Type : throw new NotSupportedException($"safetensors: unknown dtype '{dtype}'");

    /// <summary>Opens a file and validates its header: sizes, dtypes, shapes and every offset against the file length.</summary>
    public static SafetensorsFile Open(string path)
    {
        RegularFile.RequireForReading(path, "safetensors file");
        using var fs = File.OpenRead(path);
        long fileLength = fs.Length;
        if (fileLength < 8) throw new InvalidDataException($"{path}: truncated safetensors file ({fileLength} bytes, need at least 8 for the header length)");
        var lenBytes = new byte[8];
        fs.ReadExactly(lenBytes);
        ulong headerLen = BitConverter.ToUInt64(lenBytes);
        if (headerLen > MaxHeaderBytes) throw new InvalidDataException($"{path}: header length {headerLen} exceeds the cap of {MaxHeaderBytes} bytes");
        if (8 + (long)headerLen > fileLength) throw new InvalidDataException($"{path}: header length {headerLen} runs past the end of the file ({fileLength} bytes): truncated or not a safetensors file");
        var header = new byte[headerLen];
        fs.ReadExactly(header);
        if (headerLen == 0 || header[0] != (byte)'{') throw new InvalidDataException($"{path}: header does not start with '{{': not a safetensors file");
        JsonObject root;
        try { root = JsonNode.Parse(Encoding.UTF8.GetString(header)) as JsonObject ?? throw new InvalidDataException($"{path}: header is not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: header is not valid JSON: {e.Message}", e); }

        long dataStart = 8 + (long)headerLen, dataLength = fileLength - dataStart;
        var entries = new Dictionary<string, SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        List<KeyValuePair<string, JsonNode?>> items;
        try { items = root.ToList(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: header has a duplicate key: {e.Message}", e); }
        foreach (var (name, node) in items)
        {
            if (name == "__metadata__")
            {
                try
                {
                    var meta = node as JsonObject ?? throw new InvalidDataException("__metadata__ is not an object");
                    foreach (var (k, v) in meta) metadata[k] = v?.GetValue<string>() ?? throw new InvalidDataException($"metadata '{k}' is null");
                }
                catch (Exception e) when (e is InvalidOperationException or FormatException)
                {
                    throw new InvalidDataException($"{path}: __metadata__ values must be strings: {e.Message}", e);
                }
                catch (InvalidDataException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
                continue;
            }
            try
            {
                var o = node as JsonObject ?? throw new InvalidDataException("entry is not an object");
                string dtype = o["dtype"]?.GetValue<string>() ?? throw new InvalidDataException("missing dtype");
                if (!DTypes.TryGetValue(dtype, out var dt)) throw new InvalidDataException($"unknown dtype '{dtype}' (known: {string.Join(", ", DTypes.Keys)})");
                var shape = (o["shape"] as JsonArray ?? throw new InvalidDataException("missing shape")).Select(s => s!.GetValue<long>()).ToArray();
                if (shape.Any(s => s < 0)) throw new InvalidDataException("negative dimension in shape");
                var offs = o["data_offsets"] as JsonArray ?? throw new InvalidDataException("missing data_offsets");
                if (offs.Count != 2) throw new InvalidDataException("data_offsets must have two numbers");
                long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
                if (begin < 0 || end < begin || end > dataLength)
                    throw new InvalidDataException($"data_offsets [{begin}, {end}] outside the data section of {dataLength} bytes");
                long expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * dt.Size);
                if (end - begin != expected)
                    throw new InvalidDataException($"data_offsets span {end - begin} bytes but dtype {dtype} and shape [{string.Join(", ", shape)}] need {expected}");
                entries[name] = new SafetensorsEntry(name, dtype, shape, begin, end);
            }
            catch (Exception e) when (e is InvalidDataException or InvalidOperationException or FormatException or OverflowException or NullReferenceException)
            {
                throw new InvalidDataException($"{path}: tensor '{name}': {e.Message}", e);
            }
        }
        // The reference reader insists the tensors tile the data section exactly: no overlaps (two names for
        // one buffer would alias on write) and no holes (room for hidden payloads).
        long covered = 0;
        foreach (var e in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != covered)
                throw new InvalidDataException(e.Begin < covered
                    ? $"{path}: tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] overlap the previous tensor (which ends at {covered})"
                    : $"{path}: tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] leave a hole after byte {covered} of the data section");
            covered = e.End;
        }
        if (covered != dataLength)
            throw new InvalidDataException($"{path}: the tensors cover {covered} bytes but the data section has {dataLength}");
        return new SafetensorsFile(path, entries, metadata, dataStart);
    }

    /// <summary>Reads one tensor (CPU) by name, straight into the tensor's memory.</summary>
    public Tensor Read(string name)
    {
        var e = Entry(name);
        var t = torch.empty(e.Shape, DTypes[e.DType].Type);
        try { ReadInto(name, t); }
        catch { t.Dispose(); throw; }
        return t;
    }

    SafetensorsEntry Entry(string name) =>
        Entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Reads tensor <paramref name="name"/> into <paramref name="target"/> (same shape): straight into its
    /// memory when it is a contiguous CPU tensor of the file's dtype, else through one temporary and a copy.</summary>
    public void ReadInto(string name, Tensor target)
    {
        var e = Entry(name);
        if (!target.shape.SequenceEqual(e.Shape))
            throw new ArgumentException($"{Path}: tensor '{name}' is [{string.Join(", ", e.Shape)}], the target [{string.Join(", ", target.shape)}]");
        if (e.End == e.Begin) return;
        var dtype = DTypes[e.DType].Type;
        if (!TensorBytes.Direct(target, dtype))
        {
            using var tmp = Read(name);
            using (torch.no_grad()) target.copy_(tmp);
            return;
        }
        try
        {
            using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            fs.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            long got = TensorBytes.Fill(fs, target);
            if (got < e.End - e.Begin) throw new EndOfStreamException($"the file ends after {got} of {e.End - e.Begin} bytes");
        }
        catch (Exception ex) when (ex is IOException)
        {
            throw new InvalidDataException($"{Path}: tensor '{name}': could not read bytes [{e.Begin}, {e.End}) of the data section (file changed or truncated?): {ex.Message}", ex);
        }
    }

    /// <summary>Reads every tensor. All-or-nothing: a failure disposes what was read so far.</summary>
    public Dictionary<string, Tensor> ReadAll()
    {
        var result = new Dictionary<string, Tensor>();
        try { foreach (var k in Keys) result[k] = Read(k); }
        catch { foreach (var t in result.Values) t.Dispose(); throw; }
        return result;
    }

    /// <summary>Writes tensors (sorted by name, as the reference implementation does) atomically: temp file, then
    /// rename. Streams: the header comes from shapes and dtypes, then each tensor's bytes go from its own memory
    /// to the file (only a non-contiguous or non-CPU tensor is copied, one at a time).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        foreach (var (name, tensor) in ordered)
        {
            if (name == "__metadata__") throw new ArgumentException($"{path}: '__metadata__' is reserved and cannot name a tensor");
            string dtype;
            try { dtype = DTypeName(tensor.dtype); }
            catch (NotSupportedException) { throw new NotSupportedException($"{path}: tensor '{name}' has dtype {tensor.dtype}, which safetensors (as written here) does not support"); }
            long bytes = tensor.numel() * tensor.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(tensor.shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Pad the header with spaces to an 8-byte boundary so the data section stays aligned.
        int pad = (8 - headerBytes.Length % 8) % 8;
        AtomicFile.Write(path, fs =>
        {
            fs.Write(BitConverter.GetBytes((ulong)(headerBytes.Length + pad)));
            fs.Write(headerBytes);
            for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
            foreach (var (_, tensor) in ordered)
            {
                using var detached = tensor.detach();
                using var cpu = detached.cpu();
                using var dense = cpu.contiguous();
                TensorBytes.Write(fs, dense);
            }
        });
    }
}

