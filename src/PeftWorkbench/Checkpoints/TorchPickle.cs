using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Checkpoints;

/// <summary>A pickled global (module.name) that the restricted unpickler allowed; it is only ever a name.</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
    public override string ToString() => FullName;
}

/// <summary>A tensor storage named by a checkpoint's persistent id: ('storage', torch.FloatStorage, key, location, numel).</summary>
public sealed record TorchStorageRef(string Key, ScalarType DType, int ElementSize, long Numel, string Location);

/// <summary>A tensor of a checkpoint, not yet read: a strided view of a storage (torch._utils._rebuild_tensor_v2's arguments).</summary>
public sealed record TorchTensorRef(TorchStorageRef Storage, long StorageOffset, long[] Shape, long[] Stride)
{
    public ScalarType DType => Storage.DType;
}

/// <summary>A checkpoint the workbench refuses as a whole (an unsafe pickle, keys that do not fit a model).
/// Other malformed input raises InvalidDataException (a sealed type, hence this separate base).</summary>
public class CheckpointException(string message) : IOException(message);

/// <summary>Thrown when a pickle names a global the restricted unpickler does not allow: loading never runs code.</summary>
public sealed class UnsafePickleException(string message) : CheckpointException(message);

/// <summary>
/// A restricted unpickler for PyTorch state dicts. It understands the opcodes torch.save writes for dicts of
/// tensors (protocols 2-5) and knows exactly these globals: torch._utils._rebuild_tensor_v2 and
/// _rebuild_parameter, collections.OrderedDict, and the torch.*Storage types inside persistent ids. Every other
/// global (os.system, builtins.eval, any class) is refused with an exception naming it: nothing is ever called
/// or imported, so loading a checkpoint never runs code. Dicts come back as <see cref="PickleDict"/>, tuples
/// as object?[], lists as List&lt;object?&gt;, tensors as <see cref="TorchTensorRef"/> (read later, on request).
/// </summary>
public sealed class RestrictedUnpickler
{
    static readonly Dictionary<string, (ScalarType Type, int Size)> StorageTypes = new()
    {
        ["FloatStorage"] = (ScalarType.Float32, 4), ["DoubleStorage"] = (ScalarType.Float64, 8),
        ["HalfStorage"] = (ScalarType.Float16, 2), ["BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["LongStorage"] = (ScalarType.Int64, 8), ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2), ["CharStorage"] = (ScalarType.Int8, 1),
        ["ByteStorage"] = (ScalarType.Byte, 1), ["BoolStorage"] = (ScalarType.Bool, 1),
    };

    static readonly HashSet<string> Callables = new()
    {
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict",
    };

    /// <summary>The globals a pickle may name; everything else is refused.</summary>
    public static IEnumerable<string> AllowedGlobals => Callables.Concat(StorageTypes.Keys.Select(k => "torch." + k));

    readonly byte[] data;
    readonly string source;
    int pos;
    readonly List<object?> stack = new();
    readonly Stack<int> marks = new();
    readonly Dictionary<long, object?> memo = new();

    RestrictedUnpickler(byte[] data, string source) { this.data = data; this.source = source; }

    /// <summary>Unpickles <paramref name="data"/>; <paramref name="source"/> names it in errors.</summary>
    public static object? Load(byte[] data, string source)
    {
        var u = new RestrictedUnpickler(data, source);
        try { return u.Run(); }
        catch (Exception e) when (e is OverflowException or FormatException or InvalidCastException)
        {
            throw u.Bad($"malformed pickle: {e.Message}");
        }
    }

    InvalidDataException Bad(string what) => new($"{source}: {what} (pickle byte {pos})");

    object? Run()
    {
        while (true)
        {
            int at = pos;
            byte op = U8();
            switch (op)
            {
                case 0x80: U8(); break;                                   // PROTO
                case 0x95: Bytes(8); break;                               // FRAME: a length hint only
                case (byte)'.':                                           // STOP
                    if (stack.Count != 1 || marks.Count != 0) throw Bad($"pickle ends with {stack.Count} values on the stack");
                    return stack[0];
                case (byte)'(': marks.Push(stack.Count); break;           // MARK
                case (byte)'0': Pop(); break;                             // POP
                case (byte)'1': PopMark(); break;                         // POP_MARK
                case (byte)'2': Push(Peek()); break;                      // DUP
                case (byte)'N': Push(null); break;                        // NONE
                case 0x88: Push(true); break;                             // NEWTRUE
                case 0x89: Push(false); break;                            // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4))); break;   // BININT
                case (byte)'K': Push((long)U8()); break;                  // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2))); break;  // BININT2
                case 0x8a: Push(Long(U8())); break;                       // LONG1
                case 0x8b: Push(Long(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))))); break; // LONG4
                case (byte)'I':                                           // INT (text; I00/I01 are False/True)
                {
                    var s = Line();
                    Push(s switch { "00" => (object)false, "01" => true, _ => long.TryParse(s, out var v) ? v : throw Bad($"bad INT '{s}'") });
                    break;
                }
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break;  // BINFLOAT
                case (byte)'X': Push(Utf8(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))))); break;  // BINUNICODE
                case 0x8c: Push(Utf8(U8())); break;                       // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(checked((int)BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8))))); break;  // BINUNICODE8
                case (byte)'T': Push(Encoding.Latin1.GetString(Bytes(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))))); break;  // BINSTRING
                case (byte)'U': Push(Encoding.Latin1.GetString(Bytes(U8()))); break;  // SHORT_BINSTRING
                case (byte)'B': Push(Bytes(checked((int)BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))).ToArray()); break;  // BINBYTES
                case (byte)'C': Push(Bytes(U8()).ToArray()); break;       // SHORT_BINBYTES
                case (byte)'}': Push(new PickleDict()); break;            // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break;         // EMPTY_LIST
                case (byte)')': Push(Array.Empty<object?>()); break;      // EMPTY_TUPLE
                case (byte)'t': Push(PopMark().ToArray()); break;         // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                  // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }                   // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'l': Push(PopMark()); break;                   // LIST
                case (byte)'d': { var d = new PickleDict(); SetItems(d, PopMark()); Push(d); break; }       // DICT
                case (byte)'a': { var v = Pop(); AsList(Peek()).Add(v); break; }                           // APPEND
                case (byte)'e': { var items = PopMark(); AsList(Peek()).AddRange(items); break; }          // APPENDS
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(AsDict(Peek()), new List<object?> { k, v }); break; } // SETITEM
                case (byte)'u': { var items = PopMark(); SetItems(AsDict(Peek()), items); break; }          // SETITEMS
                case (byte)'c':                                           // GLOBAL module\nname\n
                {
                    var module = Line(); var name = Line();
                    Push(Global(module, name, at));
                    break;
                }
                case 0x93:                                                // STACK_GLOBAL
                {
                    var name = Pop() as string; var module = Pop() as string;
                    if (module is null || name is null) throw Bad("STACK_GLOBAL needs two strings");
                    Push(Global(module, name, at));
                    break;
                }
                case (byte)'R':                                           // REDUCE
                {
                    var args = Pop() as object?[] ?? throw Bad("REDUCE arguments are not a tuple");
                    var fn = Pop() as PickleGlobal ?? throw Bad("REDUCE on something that is not a global");
                    Push(Reduce(fn, args));
                    break;
                }
                case (byte)'b':                                           // BUILD
                {
                    Pop();  // the state: an OrderedDict's attributes (a state dict's _metadata); nothing to set
                    if (Peek() is not PickleDict) throw Bad("BUILD on something other than an OrderedDict");
                    break;
                }
                case (byte)'Q': Push(PersistentLoad(Pop())); break;      // BINPERSID
                case (byte)'h': Push(Get(U8())); break;                   // BINGET
                case (byte)'j': Push(Get(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))); break;  // LONG_BINGET
                case (byte)'g': Push(Get(long.Parse(Line()))); break;     // GET
                case (byte)'q': memo[U8()] = Peek(); break;              // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))] = Peek(); break;  // LONG_BINPUT
                case (byte)'p': memo[long.Parse(Line())] = Peek(); break; // PUT
                case 0x94: memo[memo.Count] = Peek(); break;              // MEMOIZE
                default:
                    pos = at;
                    throw Bad($"unsupported pickle opcode 0x{op:x2} ('{(op is >= 0x20 and < 0x7f ? ((char)op).ToString() : "?")}'): a state dict of tensors does not need it");
            }
        }
    }

    object Global(string module, string name, int at)
    {
        string full = $"{module}.{name}";
        if (Callables.Contains(full)) return new PickleGlobal(module, name);
        if (module == "torch" && StorageTypes.ContainsKey(name)) return new PickleGlobal(module, name);
        pos = at;
        throw new UnsafePickleException(
            $"{source}: refused global '{full}' (pickle byte {at}): loading a checkpoint never runs code; " +
            $"only these globals are allowed: {string.Join(", ", AllowedGlobals)}");
    }

    object? Reduce(PickleGlobal fn, object?[] args)
    {
        switch (fn.FullName)
        {
            case "collections.OrderedDict":
            {
                var d = new PickleDict();
                // OrderedDict(items): a list of pairs as torch.save writes, or a tuple (PyBridge writes OrderedDict(())).
                IEnumerable<object?>? pairs = args.Length == 1 ? args[0] as List<object?> ?? (IEnumerable<object?>?)(args[0] as object?[]) : null;
                if (pairs is not null)
                    foreach (var p in pairs)
                        if (p is object?[] { Length: 2 } kv) d[kv[0] ?? throw Bad("null dict key")] = kv[1];
                        else throw Bad("OrderedDict items are not pairs");
                else if (args.Length != 0) throw Bad("OrderedDict called with unexpected arguments");
                return d;
            }
            case "torch._utils._rebuild_tensor_v2":
            {
                if (args.Length is < 6 or > 7) throw Bad($"_rebuild_tensor_v2 takes 6 or 7 arguments, got {args.Length}");
                var storage = args[0] as TorchStorageRef ?? throw Bad("_rebuild_tensor_v2's first argument is not a storage");
                long offset = args[1] as long? ?? throw Bad("storage offset is not an integer");
                var shape = Ints(args[2], "size"); var stride = Ints(args[3], "stride");
                if (shape.Length != stride.Length) throw Bad($"size ({shape.Length} dims) and stride ({stride.Length} dims) differ in length");
                if (shape.Any(s => s < 0) || stride.Any(s => s < 0) || offset < 0) throw Bad("negative size, stride or offset");
                // The furthest element the view touches must lie inside the storage.
                if (shape.All(s => s > 0))
                {
                    long last = offset;
                    for (int i = 0; i < shape.Length; i++) last = checked(last + (shape[i] - 1) * stride[i]);
                    if (last >= storage.Numel)
                        throw Bad($"tensor view (offset {offset}, size [{string.Join(", ", shape)}], stride [{string.Join(", ", stride)}]) runs past storage '{storage.Key}' of {storage.Numel} elements");
                }
                return new TorchTensorRef(storage, offset, shape, stride);
            }
            case "torch._utils._rebuild_parameter":
                if (args.Length < 1 || args[0] is not TorchTensorRef t) throw Bad("_rebuild_parameter without a tensor");
                return t;
            default:
                throw Bad($"'{fn.FullName}' cannot be called");
        }
    }

    object PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] is not "storage")
            throw Bad("persistent id is not ('storage', type, key, location, numel)");
        var type = t[1] as PickleGlobal ?? throw Bad("storage type is not a global");
        if (type.Module != "torch" || !StorageTypes.TryGetValue(type.Name, out var st)) throw Bad($"'{type.FullName}' is not a storage type");
        var key = t[2] as string ?? throw Bad("storage key is not a string");
        long numel = t[4] as long? ?? throw Bad("storage size is not an integer");
        if (numel < 0) throw Bad("negative storage size");
        return new TorchStorageRef(key, st.Type, st.Size, numel, t[3] as string ?? "");
    }

    static long[] IntsOf(object? o) => o is object?[] a && a.All(x => x is long) ? a.Select(x => (long)x!).ToArray() : throw new InvalidCastException();
    long[] Ints(object? o, string what)
    {
        try { return IntsOf(o); }
        catch (InvalidCastException) { throw Bad($"tensor {what} is not a tuple of integers"); }
    }

    void SetItems(PickleDict d, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("odd number of dict items");
        for (int i = 0; i < items.Count; i += 2) d[items[i] ?? throw Bad("null dict key")] = items[i + 1];
    }

    List<object?> AsList(object? o) => o as List<object?> ?? throw Bad("APPEND to something that is not a list");
    PickleDict AsDict(object? o) => o as PickleDict ?? throw Bad("SETITEM on something that is not a dict");
    object? Get(long i) => memo.TryGetValue(i, out var v) ? v : throw Bad($"memo entry {i} was never stored");
    void Push(object? o) => stack.Add(o);
    object? Peek() => stack.Count > 0 ? stack[^1] : throw Bad("stack underflow");
    object? Pop()
    {
        if (stack.Count == 0 || (marks.Count > 0 && marks.Peek() == stack.Count)) throw Bad("stack underflow");
        var o = stack[^1]; stack.RemoveAt(stack.Count - 1); return o;
    }
    List<object?> PopMark()
    {
        if (marks.Count == 0) throw Bad("no MARK to pop to");
        int m = marks.Pop();
        var items = stack.GetRange(m, stack.Count - m);
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    byte U8() => pos < data.Length ? data[pos++] : throw Bad("truncated pickle");
    ReadOnlySpan<byte> Bytes(int n)
    {
        if (n < 0 || pos + n > data.Length) throw Bad("truncated pickle");
        var s = data.AsSpan(pos, n); pos += n; return s;
    }
    string Utf8(int n) => Encoding.UTF8.GetString(Bytes(n));
    string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', pos);
        if (end < 0) throw Bad("truncated pickle (no end of line)");
        var s = Encoding.UTF8.GetString(data, pos, end - pos); pos = end + 1; return s;
    }
    /// <summary>LONG1/LONG4: a little-endian two's complement integer. Python writes every int outside int32
    /// (a storage of 2^31 elements or more) this way; it comes back as a long whenever it fits one.</summary>
    object Long(int n)
    {
        var v = new BigInteger(Bytes(n), isUnsigned: false, isBigEndian: false);
        // Boxed on each branch: `cond ? (long)v : v` would widen the long back to a BigInteger.
        if (v >= long.MinValue && v <= long.MaxValue) return (long)v;
        return v;
    }
}

/// <summary>An insertion-ordered dict (Python dict / OrderedDict) as the unpickler returns it.</summary>
public sealed class PickleDict : System.Collections.Generic.OrderedDictionary<object, object?>;

/// <summary>
/// A PyTorch checkpoint in the zip format torch.save has written since 1.6 (.pth, .pt, .bin):
/// &lt;prefix&gt;/data.pkl (the pickled object), &lt;prefix&gt;/data/&lt;key&gt; (raw storages), &lt;prefix&gt;/byteorder.
/// The pickle goes through <see cref="RestrictedUnpickler"/>; tensors are read from their storages on request.
/// </summary>
public sealed class TorchCheckpoint : IDisposable
{
    readonly ZipArchive zip;
    readonly string prefix;
    public string Path { get; }
    /// <summary>The unpickled object: usually a <see cref="PickleDict"/> of tensors, or a dict holding one.</summary>
    public object? Root { get; }
    public bool BigEndian { get; }

    TorchCheckpoint(string path, ZipArchive zip, string prefix, object? root, bool bigEndian)
    {
        Path = path; this.zip = zip; this.prefix = prefix; Root = root; BigEndian = bigEndian;
    }

    public static TorchCheckpoint Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PyTorch checkpoint not found: {path}", path);
        var head = new byte[4];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.Read(head, 0, 4);
        if (n < 4 || head[0] != (byte)'P' || head[1] != (byte)'K')
            throw new InvalidDataException(n >= 2 && head[0] == 0x80
                ? $"{path}: a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current PyTorch (torch.save(torch.load(f, weights_only=True), f2))"
                : $"{path}: not a PyTorch zip checkpoint (no zip signature)");
        var zip = CheckpointZip.Open(path);
        try
        {
            var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? zip.Entries.FirstOrDefault(e => e.FullName == "data.pkl")
                ?? throw new InvalidDataException($"{path}: zip archive without <name>/data.pkl: not a torch.save checkpoint");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            if (zip.GetEntry(prefix + "constants.pkl") is not null || zip.Entries.Any(e => e.FullName.StartsWith(prefix + "code/", StringComparison.Ordinal)))
                throw new InvalidDataException($"{path}: a TorchScript archive (torch.jit.save), not a state dict; load it in PyTorch and save model.state_dict() with torch.save");
            bool big = false;
            if (zip.GetEntry(prefix + "byteorder") is { } bo)
            {
                var order = Encoding.ASCII.GetString(ReadEntry(bo, path)).Trim();
                big = order switch { "little" => false, "big" => true, _ => throw new InvalidDataException($"{path}: unknown byteorder '{order}'") };
            }
            var root = RestrictedUnpickler.Load(ReadEntry(pkl, path), $"{path} ({pkl.FullName})");
            return new TorchCheckpoint(path, zip, prefix, root, big);
        }
        catch { zip.Dispose(); throw; }
    }

    static byte[] ReadEntry(ZipArchiveEntry e, string path)
    {
        if (e.Length > int.MaxValue) throw new NotSupportedException($"{path}: entry '{e.FullName}' is over 2 GiB");
        var b = new byte[e.Length];
        ReadEntry(e, path, b);
        return b;
    }

    /// <summary>Reads a whole entry into <paramref name="into"/> (exactly its length), naming file and entry on failure.</summary>
    static void ReadEntry(ZipArchiveEntry e, string path, Span<byte> into)
    {
        try
        {
            using var s = e.Open();
            int total = Npy.ReadUpTo(s, into);
            if (total < into.Length) throw new InvalidDataException($"{path}: entry '{e.FullName}' ends after {total} of {into.Length} bytes (truncated)");
        }
        catch (IOException ex) { throw new InvalidDataException($"{path}: entry '{e.FullName}': {ex.Message}", ex); }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith(path, StringComparison.Ordinal)) { throw new InvalidDataException($"{path}: entry '{e.FullName}': {ex.Message}", ex); }
    }

    /// <summary>
    /// The state dict: the tensors of the root dict, or of the nested dict under <paramref name="key"/>
    /// (by default the first of "state_dict", "model", "module", "model_state_dict" that holds tensors).
    /// Keys of a dict wrapped by DistributedDataParallel ("module." on every key) lose that prefix.
    /// </summary>
    public Dictionary<string, TorchTensorRef> StateDict(string? key = null)
    {
        var root = Root as PickleDict ?? throw new InvalidDataException($"{Path}: the checkpoint holds a {Describe(Root)}, not a dict of tensors");
        PickleDict dict = root;
        if (key is not null)
            dict = root.TryGetValue(key, out var v) && v is PickleDict d ? d
                : throw new KeyNotFoundException($"{Path}: no dict under key '{key}' (top-level keys: {string.Join(", ", root.Keys)})");
        else if (!root.Values.Any(v => v is TorchTensorRef))
        {
            foreach (var k in new[] { "state_dict", "model", "module", "model_state_dict" })
                if (root.TryGetValue(k, out var v) && v is PickleDict d && d.Values.Any(x => x is TorchTensorRef)) { dict = d; break; }
            if (ReferenceEquals(dict, root))
                throw new InvalidDataException($"{Path}: no tensors at the top level nor under state_dict/model/module/model_state_dict (top-level keys: {string.Join(", ", root.Keys.Take(20))})");
        }
        var result = new Dictionary<string, TorchTensorRef>();
        foreach (var (k, v) in dict)
            if (k is string name && v is TorchTensorRef t) result[name] = t;
        if (result.Count > 0 && result.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal)))
            result = result.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value);
        return result;
    }

    static string Describe(object? o) => o switch { null => "None", object?[] => "tuple", List<object?> => "list", _ => o.GetType().Name };

    /// <summary>The archive entry of a tensor's storage, checked to hold exactly numel x element size bytes.
    /// Nothing is allocated here, so a storage that claims more than the file holds costs nothing.</summary>
    ZipArchiveEntry StorageEntry(TorchTensorRef t, string name)
    {
        var st = t.Storage;
        var entry = zip.GetEntry($"{prefix}data/{st.Key}")
            ?? throw new InvalidDataException($"{Path}: tensor '{name}': storage data/{st.Key} is missing from the archive");
        long need = st.Numel <= long.MaxValue / st.ElementSize ? st.Numel * st.ElementSize
            : throw new InvalidDataException($"{Path}: tensor '{name}': storage data/{st.Key} claims {st.Numel} elements, too many");
        if (entry.Length != need)
            throw new InvalidDataException($"{Path}: tensor '{name}': storage data/{st.Key} has {entry.Length} bytes, {st.Numel} x {st.DType} needs {need}");
        return entry;
    }

    /// <summary>Checks, without reading tensor data, that <paramref name="t"/>'s storage is in the archive at its size.</summary>
    public void Check(TorchTensorRef t, string name = "?") => StorageEntry(t, name);

    /// <summary>A view that covers consecutive elements of its storage (C order), read by one run of bytes.</summary>
    static bool IsDense(TorchTensorRef t)
    {
        long expect = 1;
        for (int i = t.Shape.Length - 1; i >= 0; i--)
        {
            if (t.Shape[i] != 1 && t.Stride[i] != expect) return false;
            expect *= t.Shape[i];
        }
        return true;
    }

    /// <summary>Reads a tensor (CPU, contiguous) from its storage; <paramref name="name"/> names it in errors.
    /// A dense view reads only its own bytes; a strided one (a transpose) reads the storage, then copies once.</summary>
    public Tensor Read(TorchTensorRef t, string name = "?")
    {
        var result = torch.empty(t.Shape, t.DType);
        try { ReadInto(t, result, name); }
        catch { result.Dispose(); throw; }
        return result;
    }

    /// <summary>
    /// Reads a tensor straight into <paramref name="target"/> (same shape; dtype and device may differ): a dense
    /// view of the file's dtype goes from the archive into the target's memory with no copy in between.
    /// </summary>
    public void ReadInto(TorchTensorRef t, Tensor target, string name = "?")
    {
        if (!target.shape.SequenceEqual(t.Shape))
            throw new ArgumentException($"{Path}: tensor '{name}' is [{string.Join(", ", t.Shape)}], the target [{string.Join(", ", target.shape)}]");
        var st = t.Storage;
        var entry = StorageEntry(t, name);
        long numel = t.Shape.Aggregate(1L, (a, b) => a * b);
        if (numel == 0) return;
        try
        {
            if (IsDense(t) && TensorBytes.Direct(target, st.DType) && !(BigEndian && st.ElementSize > 1))
            {
                using var s = entry.Open();
                TensorBytes.Skip(s, t.StorageOffset * st.ElementSize);
                long got = TensorBytes.Fill(s, target);
                if (got < numel * st.ElementSize) throw Truncated(entry, got);
                return;
            }
            // A strided view, another dtype, or big-endian bytes: the storage (or the dense run) once, then one copy.
            bool dense = IsDense(t);
            long first = dense ? t.StorageOffset : 0, count = dense ? numel : st.Numel;
            using var raw = torch.empty(count, st.DType);
            using (var s = entry.Open())
            {
                TensorBytes.Skip(s, first * st.ElementSize);
                long got = TensorBytes.Fill(s, raw);
                if (got < count * st.ElementSize) throw Truncated(entry, got);
            }
            if (BigEndian && st.ElementSize > 1) Npy.SwapBytes(raw.bytes, st.ElementSize);
            using var view = dense ? raw.view(t.Shape) : raw.as_strided(t.Shape, t.Stride, t.StorageOffset);
            using (torch.no_grad()) target.copy_(view);
        }
        catch (IOException ex) { throw new InvalidDataException($"{Path}: tensor '{name}': entry '{entry.FullName}': {ex.Message}", ex); }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith(Path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{Path}: tensor '{name}': entry '{entry.FullName}': {ex.Message}", ex);
        }
    }

    InvalidDataException Truncated(ZipArchiveEntry e, long got) =>
        new($"{Path}: entry '{e.FullName}' ends after {got} of {e.Length} bytes (truncated)");

    public void Dispose() => zip.Dispose();
}
