using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>
/// Test-side writers that produce checkpoint bytes straight from the formats' specifications (npy headers,
/// pickle opcodes, zip containers), independent of the library's readers and writers.
/// </summary>
static class FormatWriters
{
    // ---- .npy -----------------------------------------------------------------------------------------

    /// <summary>A .npy file: magic, version, header length, the dict literal padded to 64 bytes, then data.</summary>
    public static byte[] NpyBytes(string descr, long[] shape, byte[] data, bool fortran = false, int major = 1)
    {
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        string dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shapeText}, }}";
        int lenSize = major == 1 ? 2 : 4;
        int pre = 6 + 2 + lenSize;
        int total = pre + dict.Length + 1;
        int pad = (64 - total % 64) % 64;
        var header = Encoding.ASCII.GetBytes(dict + new string(' ', pad) + "\n");
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0 });
        if (major == 1) { var l = new byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(l, (ushort)header.Length); ms.Write(l); }
        else { var l = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(l, (uint)header.Length); ms.Write(l); }
        ms.Write(header);
        ms.Write(data);
        return ms.ToArray();
    }

    public static byte[] F32(IEnumerable<float> values, bool bigEndian = false)
    {
        var v = values.ToArray();
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++)
            if (bigEndian) BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(i * 4), v[i]);
            else BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    public static byte[] I64(IEnumerable<long> values)
    {
        var v = values.ToArray();
        var b = new byte[v.Length * 8];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(i * 8), v[i]);
        return b;
    }

    /// <summary>A zip with the given entries; deflated when <paramref name="deflate"/> says so for that name.</summary>
    public static void Zip(string path, IEnumerable<(string Name, byte[] Bytes)> entries, Func<string, bool>? deflate = null)
    {
        using var fs = System.IO.File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            var e = zip.CreateEntry(name, deflate?.Invoke(name) == true ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(bytes);
        }
    }

    // ---- pickle -----------------------------------------------------------------------------------------

    /// <summary>Emits pickle opcodes one by one (protocol 2, as torch.save writes).</summary>
    public sealed class Pickle
    {
        readonly MemoryStream ms = new();
        int memo;
        public Pickle Op(byte op) { ms.WriteByte(op); return this; }
        public Pickle Proto(byte v = 2) => Op(0x80).Op(v);
        public Pickle EmptyDict() => Op((byte)'}');
        public Pickle EmptyTuple() => Op((byte)')');
        public Pickle Mark() => Op((byte)'(');
        public Pickle Tuple() => Op((byte)'t');
        public Pickle Tuple1() => Op(0x85);
        public Pickle Tuple2() => Op(0x86);
        public Pickle SetItem() => Op((byte)'s');
        public Pickle SetItems() => Op((byte)'u');
        public Pickle Reduce() => Op((byte)'R');
        public Pickle Build() => Op((byte)'b');
        public Pickle BinPersId() => Op((byte)'Q');
        public Pickle False() => Op(0x89);
        public Pickle Stop() => Op((byte)'.');
        public Pickle BinPut() { Op((byte)'q'); return Op((byte)(memo++)); }
        public Pickle BinGet(int i) => Op((byte)'h').Op((byte)i);
        public int LastMemo => memo - 1;
        public Pickle Str(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            Op((byte)'X');
            var l = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(l, (uint)b.Length); ms.Write(l);
            ms.Write(b);
            return this;
        }
        public Pickle ShortStr(string s) { var b = Encoding.UTF8.GetBytes(s); Op(0x8c).Op((byte)b.Length); ms.Write(b); return this; }
        public Pickle Int(long v)
        {
            if (v is >= 0 and < 256) return Op((byte)'K').Op((byte)v);
            if (v is >= 0 and < 65536) { Op((byte)'M'); var b = new byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); ms.Write(b); return this; }
            if (v is >= int.MinValue and <= int.MaxValue) { Op((byte)'J'); var b = new byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, (int)v); ms.Write(b); return this; }
            return Long1(new System.Numerics.BigInteger(v));
        }
        /// <summary>LONG1, as Python pickles an int outside int32: minimal little-endian two's complement.</summary>
        public Pickle Long1(System.Numerics.BigInteger v)
        {
            var b = v.IsZero ? Array.Empty<byte>() : v.ToByteArray(isUnsigned: false, isBigEndian: false);
            Op(0x8a).Op((byte)b.Length); ms.Write(b); return this;
        }
        public Pickle Global(string module, string name) { Op((byte)'c'); ms.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n")); return this; }
        public Pickle StackGlobal(string module, string name) => ShortStr(module).ShortStr(name).Op(0x93);
        public Pickle IntTuple(long[] values)
        {
            if (values.Length == 0) return EmptyTuple();
            Mark();
            foreach (var v in values) Int(v);
            return Tuple();
        }

        /// <summary>torch._utils._rebuild_tensor_v2(('storage', torch.{type}, key, 'cpu', numel), offset, size, stride, False, OrderedDict()).</summary>
        public Pickle Tensor(string storageType, string key, long numel, long offset, long[] size, long[] stride)
        {
            Global("torch._utils", "_rebuild_tensor_v2");
            Mark();
            Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Tuple().BinPersId();
            Int(offset).IntTuple(size).IntTuple(stride).False();
            Global("collections", "OrderedDict").EmptyTuple().Reduce();
            Tuple();
            return Reduce();
        }

        public byte[] Bytes => ms.ToArray();
    }

    /// <summary>A torch.save-style zip: archive/data.pkl, archive/data/&lt;key&gt;, archive/byteorder, archive/version.</summary>
    public static void TorchZip(string path, byte[] pickle, IEnumerable<(string Key, byte[] Bytes)> storages, string byteorder = "little")
    {
        var entries = new List<(string, byte[])> { ("archive/data.pkl", pickle), ("archive/byteorder", Encoding.ASCII.GetBytes(byteorder)) };
        entries.AddRange(storages.Select(s => ($"archive/data/{s.Key}", s.Bytes)));
        entries.Add(("archive/version", Encoding.ASCII.GetBytes("3\n")));
        Zip(path, entries);
    }

    /// <summary>A .pth holding {name: float32 tensor} (one storage per tensor, optionally nested under <paramref name="nestUnder"/>).</summary>
    public static void StateDictPth(string path, IReadOnlyList<(string Name, long[] Shape, float[] Values)> tensors, string? nestUnder = null)
    {
        var p = new Pickle().Proto().EmptyDict().BinPut();
        if (nestUnder is not null) p.Str(nestUnder).Global("collections", "OrderedDict").EmptyTuple().Reduce().BinPut();
        p.Mark();
        var storages = new List<(string, byte[])>();
        for (int i = 0; i < tensors.Count; i++)
        {
            var (name, shape, values) = tensors[i];
            p.Str(name).Tensor("FloatStorage", i.ToString(), values.Length, 0, shape, ContiguousStride(shape)).BinPut();
            storages.Add((i.ToString(), F32(values)));
        }
        p.SetItems();
        if (nestUnder is not null) p.SetItem();
        p.Stop();
        TorchZip(path, p.Bytes, storages);
    }

    public static long[] ContiguousStride(long[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
        return s;
    }

    // ---- models --------------------------------------------------------------------------------------

    /// <summary>The 2-block ViT the tests load into: 16 px images, 8 px patches (2x2 grid), dim 32, 2 heads.</summary>
    public static VitConfig Small(int classes = 3, int imageSize = 16, bool clip = false) => new()
    {
        Name = "test-2block", ImageSize = imageSize, PatchSize = 8, EmbedDim = 32, Depth = 2, NumHeads = 2, NumClasses = classes,
        PatchBias = !clip, PreNorm = clip, Activation = clip ? "quick_gelu" : "gelu",
    };

    /// <summary>Deterministic distinct values for a tensor (so any mix-up of elements shows).</summary>
    public static float[] Values(long count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, (int)count).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>A copy of every parameter, to prove a failed load changed nothing.</summary>
    public static Dictionary<string, Tensor> Snapshot(VisionTransformer m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    public static void AssertUnchanged(Dictionary<string, Tensor> before, VisionTransformer m)
    {
        foreach (var (name, p) in m.named_parameters())
            Assert.True(before[name].shape.SequenceEqual(p.shape) && before[name].eq(p).all().item<bool>(), $"parameter {name} changed by a failed load");
    }

    public static float[] Floats(Tensor t) => t.detach().cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray();
}
