using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Checkpoints;

/// <summary>The header of one .npy array: dtype string as numpy writes it ('&lt;f4'), memory order, shape.</summary>
public sealed record NpyHeader(string Descr, bool FortranOrder, long[] Shape, ScalarType DType, int ItemSize, bool BigEndian, int DataOffset)
{
    public long Numel => Shape.Aggregate(1L, (a, b) => checked(a * b));
    public long DataBytes => checked(Numel * ItemSize);
}

/// <summary>
/// numpy's .npy format (versions 1.0, 2.0, 3.0): magic "\x93NUMPY", version, header length, a Python dict
/// literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}, then the raw array. Big-endian arrays are
/// converted; Fortran-ordered arrays come back in C order. Object and structured arrays are refused.
/// </summary>
public static class Npy
{
    static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' };

    /// <summary>Header lengths above this are refused (numpy itself refuses over 10 000 bytes unless told otherwise).</summary>
    public const int MaxHeaderBytes = 1 << 20;

    static readonly Dictionary<string, (ScalarType Type, int Size)> Kinds = new()
    {
        ["f2"] = (ScalarType.Float16, 2), ["f4"] = (ScalarType.Float32, 4), ["f8"] = (ScalarType.Float64, 8),
        ["i1"] = (ScalarType.Int8, 1), ["i2"] = (ScalarType.Int16, 2), ["i4"] = (ScalarType.Int32, 4), ["i8"] = (ScalarType.Int64, 8),
        ["u1"] = (ScalarType.Byte, 1), ["b1"] = (ScalarType.Bool, 1),
    };

    /// <summary>Reads a whole .npy file.</summary>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"npy file not found: {path}", path);
        using var fs = File.OpenRead(path);
        return Read(fs, path);
    }

    /// <summary>Reads an array from a stream; <paramref name="source"/> names it in errors ("file.npz: key").</summary>
    public static Tensor Read(Stream stream, string source)
    {
        var h = ReadHeader(stream, source);
        return ReadData(stream, h, source);
    }

    /// <summary>Reads and checks the header only, leaving the stream at the first data byte.</summary>
    public static NpyHeader ReadHeader(Stream stream, string source)
    {
        var pre = new byte[8];
        int got = ReadUpTo(stream, pre);
        if (got < 8 || !pre.AsSpan(0, 6).SequenceEqual(Magic))
            throw new InvalidDataException($"{source}: not a .npy array (no \\x93NUMPY magic{(got < 8 ? $", only {got} bytes" : "")})");
        byte major = pre[6];
        int lenSize = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw new InvalidDataException($"{source}: .npy format version {major}.{pre[7]} is not supported (1.0, 2.0, 3.0 are)"),
        };
        var lenBytes = new byte[lenSize];
        if (ReadUpTo(stream, lenBytes) < lenSize) throw new InvalidDataException($"{source}: truncated .npy header");
        long headerLen = lenSize == 2 ? BitConverter.ToUInt16(lenBytes) : BitConverter.ToUInt32(lenBytes);
        if (headerLen > MaxHeaderBytes) throw new InvalidDataException($"{source}: .npy header length {headerLen} exceeds the cap of {MaxHeaderBytes}");
        var text = new byte[headerLen];
        if (ReadUpTo(stream, text) < headerLen) throw new InvalidDataException($"{source}: .npy header says {headerLen} bytes but the data ends first (truncated)");
        // Version 3 allows UTF-8 field names; versions 1 and 2 are latin-1.
        string dict = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(text);
        return ParseHeader(dict, source, 6 + 2 + lenSize + (int)headerLen);
    }

    static NpyHeader ParseHeader(string dict, string source, int dataOffset)
    {
        Dictionary<string, object> fields;
        try { fields = new PyLiteral(dict).ParseDict(); }
        catch (FormatException e) { throw new InvalidDataException($"{source}: unreadable .npy header {dict.Trim()}: {e.Message}", e); }
        if (!fields.TryGetValue("descr", out var d) || d is not string descr)
            throw new InvalidDataException($"{source}: .npy header has no string 'descr' (structured arrays are not supported): {dict.Trim()}");
        if (!fields.TryGetValue("fortran_order", out var f) || f is not bool fortran)
            throw new InvalidDataException($"{source}: .npy header has no boolean 'fortran_order': {dict.Trim()}");
        if (!fields.TryGetValue("shape", out var s) || s is not List<long> shapeList || shapeList.Any(x => x < 0))
            throw new InvalidDataException($"{source}: .npy header has no valid 'shape' tuple: {dict.Trim()}");
        if (descr.Length != 3 || !Kinds.TryGetValue(descr[1..], out var kind) || descr[0] is not ('<' or '>' or '|' or '='))
            throw new InvalidDataException($"{source}: unsupported .npy dtype '{descr}' (supported: {string.Join(", ", Kinds.Keys.Select(k => (k is "u1" or "b1" or "i1" ? "|" : "<") + k))}, either byte order)");
        bool big = descr[0] == '>' || (descr[0] == '=' && !BitConverter.IsLittleEndian);
        return new NpyHeader(descr, fortran, shapeList.ToArray(), kind.Type, kind.Size, big && kind.Size > 1, dataOffset);
    }

    /// <summary>Reads the array data that follows a header.</summary>
    public static Tensor ReadData(Stream stream, NpyHeader h, string source)
    {
        long bytes;
        try { bytes = h.DataBytes; }
        catch (OverflowException) { throw new InvalidDataException($"{source}: shape ({string.Join(", ", h.Shape)}) is too large"); }
        if (bytes > int.MaxValue) throw new NotSupportedException($"{source}: array of {bytes} bytes; arrays over 2 GiB are not supported");
        if (stream.CanSeek && stream.Length - stream.Position < bytes)
            throw new InvalidDataException($"{source}: truncated .npy data: shape ({string.Join(", ", h.Shape)}) of {h.Descr} needs {bytes} bytes, {stream.Length - stream.Position} remain");
        // Fortran order is C order of the reversed shape; permute back and make it contiguous.
        var cShape = h.FortranOrder ? h.Shape.Reverse().ToArray() : h.Shape;
        var t = torch.empty(cShape, h.DType);
        if (bytes > 0)
        {
            // Straight into the tensor's memory: no second copy of the array in managed memory.
            var span = t.bytes;
            int got = ReadUpTo(stream, span);
            if (got < bytes)
            {
                t.Dispose();
                throw new InvalidDataException($"{source}: truncated .npy data: shape ({string.Join(", ", h.Shape)}) of {h.Descr} needs {bytes} bytes, found {got}");
            }
            if (h.BigEndian) SwapBytes(span, h.ItemSize);
        }
        if (!h.FortranOrder || h.Shape.Length < 2) return t;
        using (t)
            return t.permute(Enumerable.Range(0, h.Shape.Length).Reverse().Select(i => (long)i).ToArray()).contiguous();
    }

    internal static void SwapBytes(Span<byte> b, int itemSize)
    {
        for (int i = 0; i + itemSize <= b.Length; i += itemSize) b.Slice(i, itemSize).Reverse();
    }

    /// <summary>Reads until the buffer is full or the stream ends. Reads go in 1 MiB pieces: zip entry streams
    /// are several times slower when asked for one huge read (measured: 146 vs 650 MB/s).</summary>
    internal static int ReadUpTo(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer.Slice(total, Math.Min(1 << 20, buffer.Length - total)));
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>Just enough of Python's literal syntax for .npy headers: dicts, strings, True/False/None, ints, tuples.</summary>
    sealed class PyLiteral(string text)
    {
        int pos;

        public Dictionary<string, object> ParseDict()
        {
            var d = new Dictionary<string, object>();
            Expect('{');
            while (true)
            {
                Skip();
                if (Peek() == '}') { pos++; break; }
                var key = ParseValue() as string ?? throw new FormatException($"dict key at {pos} is not a string");
                Expect(':');
                d[key] = ParseValue();
                Skip();
                if (Peek() == ',') { pos++; continue; }
                Expect('}');
                break;
            }
            return d;
        }

        object ParseValue()
        {
            Skip();
            char c = Peek();
            if (c is '\'' or '"')
            {
                int end = text.IndexOf(c, pos + 1);
                if (end < 0) throw new FormatException("unterminated string");
                var s = text[(pos + 1)..end];
                pos = end + 1;
                return s;
            }
            if (c == '(')
            {
                pos++;
                var items = new List<long>();
                while (true)
                {
                    Skip();
                    if (Peek() == ')') { pos++; return items; }
                    items.Add(ParseValue() is long v ? v : throw new FormatException($"shape entry at {pos} is not an integer"));
                    Skip();
                    if (Peek() == ',') pos++;
                    else if (Peek() != ')') throw new FormatException($"expected ',' or ')' at {pos}");
                }
            }
            if (c == '{') return ParseDict();
            int start = pos;
            while (pos < text.Length && (char.IsLetterOrDigit(text[pos]) || text[pos] is '_' or '-')) pos++;
            var word = text[start..pos].TrimEnd('L');
            return word switch
            {
                "True" => true,
                "False" => false,
                "None" => "None",
                _ when long.TryParse(word, out var n) => n,
                _ => throw new FormatException($"unexpected '{(word.Length > 0 ? word : c.ToString())}' at {start}"),
            };
        }

        char Peek() => pos < text.Length ? text[pos] : throw new FormatException("header ends early");
        void Skip() { while (pos < text.Length && char.IsWhiteSpace(text[pos])) pos++; }
        void Expect(char c)
        {
            Skip();
            if (Peek() != c) throw new FormatException($"expected '{c}' at {pos}, found '{text[pos]}'");
            pos++;
        }
    }
}

/// <summary>Writes .npz archives as numpy.savez does (stored .npy entries, C order, little-endian), streaming
/// each array from its tensor's memory; written whole or not at all.</summary>
public static class NpzWriter
{
    static readonly Dictionary<ScalarType, string> Descr = new()
    {
        [ScalarType.Float16] = "<f2", [ScalarType.Float32] = "<f4", [ScalarType.Float64] = "<f8", [ScalarType.Int8] = "|i1",
        [ScalarType.Int16] = "<i2", [ScalarType.Int32] = "<i4", [ScalarType.Int64] = "<i8", [ScalarType.Byte] = "|u1", [ScalarType.Bool] = "|b1",
    };

    public static void Write(string path, IReadOnlyDictionary<string, Tensor> arrays)
    {
        foreach (var (k, t) in arrays)
            if (!Descr.ContainsKey(t.dtype)) throw new NotSupportedException($"{path}: array '{k}' has dtype {t.dtype}, which .npy (as written here) does not support");
        AtomicFile.Write(path, fs =>
        {
            using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var (key, tensor) in arrays)
            {
                var shape = tensor.shape.Length == 1 ? $"{tensor.shape[0]}," : string.Join(", ", tensor.shape);
                var dict = $"{{'descr': '{Descr[tensor.dtype]}', 'fortran_order': False, 'shape': ({shape}), }}";
                // Version 1.0 header padded with spaces to a multiple of 64 bytes, ending in a newline.
                int total = (10 + dict.Length + 1 + 63) / 64 * 64;
                var header = dict.PadRight(total - 10 - 1) + "\n";
                var entry = zip.CreateEntry(key + ".npy", CompressionLevel.NoCompression);
                using var s = entry.Open();
                s.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 });
                s.Write(BitConverter.GetBytes((ushort)header.Length));
                s.Write(Encoding.Latin1.GetBytes(header));
                using var detached = tensor.detach();
                using var cpu = detached.cpu();
                using var dense = cpu.contiguous();
                TensorBytes.Write(s, dense);
            }
        });
    }
}

/// <summary>
/// A numpy .npz archive: a zip of .npy files (stored or deflated), keys being the entry names without ".npy".
/// Arrays are read one at a time on request; headers can be read without the data (for shape checks).
/// </summary>
public sealed class NpzFile : IDisposable
{
    readonly ZipArchive zip;
    readonly Dictionary<string, ZipArchiveEntry> entries = new();
    readonly Dictionary<string, NpyHeader> headers = new();
    public string Path { get; }
    public IReadOnlyCollection<string> Keys => entries.Keys;

    NpzFile(string path, ZipArchive zip)
    {
        Path = path; this.zip = zip;
        foreach (var e in zip.Entries)
        {
            if (e.FullName.EndsWith('/')) continue;
            var key = e.FullName.EndsWith(".npy", StringComparison.Ordinal) ? e.FullName[..^4] : e.FullName;
            entries[key] = e;
        }
    }

    public static NpzFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"npz file not found: {path}", path);
        var zip = CheckpointZip.Open(path);
        try { return new NpzFile(path, zip); }
        catch { zip.Dispose(); throw; }
    }

    public bool Contains(string key) => entries.ContainsKey(key);

    /// <summary>The header of array <paramref name="key"/> (read once, then cached).</summary>
    public NpyHeader Header(string key)
    {
        if (headers.TryGetValue(key, out var h)) return h;
        using var s = OpenEntry(key);
        return headers[key] = Npy.ReadHeader(s, Source(key));
    }

    /// <summary>Reads array <paramref name="key"/>.</summary>
    public Tensor Read(string key)
    {
        using var s = OpenEntry(key);
        try { return Npy.Read(s, Source(key)); }
        catch (InvalidDataException e) when (!e.Message.StartsWith(Path, StringComparison.Ordinal))
        {
            // A broken deflate stream surfaces as the zip library's own error: say where.
            throw new InvalidDataException($"{Source(key)}: {e.Message}", e);
        }
    }

    /// <summary>Checks, without reading the data, that the entry holds the whole array its header declares.</summary>
    public void Check(string key)
    {
        var h = Header(key);
        long need;
        try { need = checked(h.DataOffset + h.DataBytes); }
        catch (OverflowException) { throw new InvalidDataException($"{Source(key)}: shape ({string.Join(", ", h.Shape)}) is too large"); }
        if (entries[key].Length < need)
            throw new InvalidDataException($"{Source(key)}: truncated .npy data: shape ({string.Join(", ", h.Shape)}) of {h.Descr} needs {h.DataBytes} bytes, the entry holds {entries[key].Length - h.DataOffset}");
    }

    /// <summary>Reads array <paramref name="key"/> into <paramref name="target"/> (same shape): straight into its
    /// memory for a C-ordered little-endian array of the target's dtype, else through one temporary and a copy.</summary>
    public void ReadInto(string key, Tensor target)
    {
        var h = Header(key);
        if (!target.shape.SequenceEqual(h.Shape))
            throw new ArgumentException($"{Source(key)}: array is ({string.Join(", ", h.Shape)}), the target [{string.Join(", ", target.shape)}]");
        if (h.FortranOrder && h.Shape.Count(d => d > 1) > 1 || h.BigEndian || !TensorBytes.Direct(target, h.DType))
        {
            using var tmp = Read(key);
            using (torch.no_grad()) target.copy_(tmp);
            return;
        }
        using var s = OpenEntry(key);
        try
        {
            TensorBytes.Skip(s, h.DataOffset);
            long got = TensorBytes.Fill(s, target);
            if (got < h.DataBytes)
                throw new InvalidDataException($"{Source(key)}: truncated .npy data: shape ({string.Join(", ", h.Shape)}) of {h.Descr} needs {h.DataBytes} bytes, found {got}");
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(Path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{Source(key)}: {e.Message}", e);
        }
    }

    string Source(string key) => $"{Path}: array '{key}'";

    Stream OpenEntry(string key)
    {
        if (!entries.TryGetValue(key, out var e))
            throw new KeyNotFoundException($"{Path}: no array named '{key}'");
        try { return e.Open(); }
        catch (InvalidDataException ex) { throw new InvalidDataException($"{Source(key)}: {ex.Message}", ex); }
    }

    public void Dispose() => zip.Dispose();
}

/// <summary>Opens zip containers (npz, PyTorch) so that a damaged archive fails at once, with the file named.</summary>
internal static class CheckpointZip
{
    public static ZipArchive Open(string path)
    {
        var fs = File.OpenRead(path);
        try
        {
            var zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: false);
            // The central directory may be read lazily: touch it here, where the error can still say which file.
            try { _ = zip.Entries.Count; }
            catch { zip.Dispose(); throw; }
            return zip;
        }
        catch (InvalidDataException e)
        {
            fs.Dispose();
            throw new InvalidDataException($"{path}: unreadable zip archive (truncated or damaged): {e.Message}", e);
        }
        catch { fs.Dispose(); throw; }
    }
}
