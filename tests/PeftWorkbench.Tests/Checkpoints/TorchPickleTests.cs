using System.Text;
using PeftWorkbench.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

public class TorchPickleTests
{
    /// <summary>
    /// {"weight": 2x3 float tensor, "weight_t": its transpose (same storage, strided view), "half": f16 at an offset,
    /// "steps": int64 scalar}, as torch.save writes a state dict: an OrderedDict with _metadata, memo puts and gets.
    /// </summary>
    static byte[] StateDictPickle()
    {
        var p = new Pickle().Proto(2);
        p.Global("collections", "OrderedDict").BinPut().EmptyTuple().Reduce().BinPut();
        p.Mark();
        p.Str("weight").Tensor("FloatStorage", "0", 6, 0, new long[] { 2, 3 }, new long[] { 3, 1 }).BinPut();
        // Same storage again through the memo (BINGET of the persistent-id result), viewed transposed.
        p.Str("weight_t").Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(6).Tuple().BinPersId()
            .Int(0).IntTuple(new long[] { 3, 2 }).IntTuple(new long[] { 1, 3 }).False()
            .Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
        p.ShortStr("half").Tensor("HalfStorage", "1", 4, 1, new long[] { 2 }, new long[] { 1 });
        p.Str("steps").Tensor("LongStorage", "2", 1, 0, Array.Empty<long>(), Array.Empty<long>());
        p.SetItems();
        // state_dict()._metadata arrives through BUILD with {'_metadata': OrderedDict({'': {'version': 1}})}.
        p.EmptyDict().Str("_metadata").Global("collections", "OrderedDict").EmptyTuple().Reduce()
            .Str("").EmptyDict().Str("version").Int(1).SetItem().SetItem().SetItem().Build();
        return p.Stop().Bytes;
    }

    static (string, byte[])[] Storages() => new[]
    {
        ("0", F32(new[] { 1f, 2, 3, 4, 5, 6 })),
        ("1", new byte[] { 0, 0, 0x00, 0x3C, 0x00, 0xC0, 0, 0 }),  // f16: [junk, 1.0, -2.0, junk]
        ("2", I64(new[] { 12345L })),
    };

    [Fact]
    public void LoadsAStateDictAssembledFromPickleOpcodes()
    {
        using var dir = new TempDir();
        var path = dir.File("sd.pth");
        TorchZip(path, StateDictPickle(), Storages());
        using var ckpt = TorchCheckpoint.Open(path);
        var sd = ckpt.StateDict();
        Assert.Equal(new[] { "weight", "weight_t", "half", "steps" }, sd.Keys);

        var w = ckpt.Read(sd["weight"], "weight");
        Assert.Equal(new long[] { 2, 3 }, w.shape);
        Assert.Equal(new[] { 1f, 2, 3, 4, 5, 6 }, w.data<float>().ToArray());
        var wt = ckpt.Read(sd["weight_t"], "weight_t");
        Assert.Equal(new long[] { 3, 2 }, wt.shape);
        Assert.Equal(new[] { 1f, 4, 2, 5, 3, 6 }, wt.data<float>().ToArray());
        var h = ckpt.Read(sd["half"], "half");
        Assert.Equal(ScalarType.Float16, h.dtype);
        Assert.Equal(new[] { 1f, -2f }, Floats(h));
        var steps = ckpt.Read(sd["steps"], "steps");
        Assert.Empty(steps.shape);
        Assert.Equal(12345L, steps.item<long>());
    }

    [Fact]
    public void BigEndianStoragesAreSwapped()
    {
        using var dir = new TempDir();
        var path = dir.File("be.pth");
        var p = new Pickle().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 }).SetItem().Stop();
        TorchZip(path, p.Bytes, new[] { ("0", F32(new[] { 1.5f, -3f }, bigEndian: true)) }, byteorder: "big");
        using var ckpt = TorchCheckpoint.Open(path);
        Assert.Equal(new[] { 1.5f, -3f }, ckpt.Read(ckpt.StateDict()["w"]).data<float>().ToArray());
    }

    [Fact]
    public void FindsTheStateDictNestedUnderAKey()
    {
        using var dir = new TempDir();
        var path = dir.File("nested.pth");
        // {"epoch": 3, "state_dict": {"module.a": tensor}}: DDP's "module." prefix is dropped too.
        var p = new Pickle().Proto().EmptyDict().Mark().Str("epoch").Int(3).Str("state_dict").EmptyDict()
            .Str("module.a").Tensor("FloatStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 }).SetItem()
            .SetItems().Stop();
        TorchZip(path, p.Bytes, new[] { ("0", F32(new[] { 7f, 8f })) });
        using var ckpt = TorchCheckpoint.Open(path);
        var sd = ckpt.StateDict();
        Assert.Equal(new[] { "a" }, sd.Keys);
        Assert.Equal(new[] { 7f, 8f }, ckpt.Read(sd["a"]).data<float>().ToArray());
        Assert.Equal(new[] { "a" }, ckpt.StateDict("state_dict").Keys);
        var e = Assert.Throws<KeyNotFoundException>(() => ckpt.StateDict("model"));
        Assert.Contains("'model'", e.Message);
    }

    [Fact]
    public void RefusesOsSystemAndNeverRunsIt()
    {
        using var dir = new TempDir();
        var marker = dir.File("pwned");
        var path = dir.File("evil.pth");
        var p = new Pickle().Proto().Global("os", "system").Str($"touch {marker}").Tuple1().Reduce().Stop();
        TorchZip(path, p.Bytes, Array.Empty<(string, byte[])>());
        var e = Assert.Throws<UnsafePickleException>(() => TorchCheckpoint.Open(path));
        Assert.Contains("os.system", e.Message);
        Assert.Contains(path, e.Message);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    [InlineData("torch", "load")]
    [InlineData("collections", "defaultdict")]
    public void RefusesEveryOtherGlobalAlsoThroughStackGlobal(string module, string name)
    {
        var p = new Pickle().Proto(4).EmptyDict().Str("x").StackGlobal(module, name).Str("1+1").Tuple1().Reduce().SetItem().Stop();
        var e = Assert.Throws<UnsafePickleException>(() => RestrictedUnpickler.Load(p.Bytes, "mem.pkl"));
        Assert.Contains($"{module}.{name}", e.Message);
        Assert.Contains("mem.pkl", e.Message);
    }

    [Fact]
    public void MalformedPicklesAreClearErrors()
    {
        var cases = new (byte[] Bytes, string Expect)[]
        {
            (new Pickle().Proto().EmptyDict().Bytes, "truncated"),                                       // no STOP
            (new Pickle().Proto().Op(0x81).Stop().Bytes, "opcode 0x81"),                                  // NEWOBJ: not for state dicts
            (new Pickle().Proto().BinGet(9).Stop().Bytes, "memo"),
            (new Pickle().Proto().Op(0x8d).Op(0xff).Op(0xff).Op(0xff).Op(0xff).Op(0xff).Op(0xff).Op(0xff).Op(0x7f).Stop().Bytes, "malformed"),  // BINUNICODE8 of 2^63 bytes
            (new Pickle().Proto().Global("torch", "FloatStorage").EmptyTuple().Reduce().Stop().Bytes, "cannot be called"),
            (new Pickle().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 4, 2, new long[] { 3 }, new long[] { 1 }).SetItem().Stop().Bytes, "runs past storage"),
        };
        foreach (var (bytes, expect) in cases)
        {
            var e = Assert.ThrowsAny<InvalidDataException>(() => RestrictedUnpickler.Load(bytes, "case.pkl"));
            Assert.Contains("case.pkl", e.Message);
            Assert.Contains(expect, e.Message);
        }
    }

    [Fact]
    public void BadArchivesNameTheFile()
    {
        using var dir = new TempDir();
        var path = dir.File("sd.pth");
        TorchZip(path, StateDictPickle(), Storages());

        var cut = dir.File("cut.pth");
        var all = File.ReadAllBytes(path);
        File.WriteAllBytes(cut, all[..(all.Length / 2)]);
        var e = Assert.ThrowsAny<InvalidDataException>(() => TorchCheckpoint.Open(cut));
        Assert.Contains(cut, e.Message);

        var legacy = dir.File("legacy.pth");
        File.WriteAllBytes(legacy, new byte[] { 0x80, 0x02, 0x8a, 0x0a });
        e = Assert.ThrowsAny<InvalidDataException>(() => TorchCheckpoint.Open(legacy));
        Assert.Contains("legacy", e.Message);

        var script = dir.File("script.pt");
        Zip(script, new[] { ("m/data.pkl", StateDictPickle()), ("m/constants.pkl", new byte[] { 0x80, 2, (byte)')', (byte)'.' }), ("m/code/__torch__/m.py", Encoding.ASCII.GetBytes("x")) });
        e = Assert.ThrowsAny<InvalidDataException>(() => TorchCheckpoint.Open(script));
        Assert.Contains("TorchScript", e.Message);

        // A storage shorter than the pickle says: the error names the tensor.
        var shortStorage = dir.File("short.pth");
        TorchZip(shortStorage, StateDictPickle(), new[] { ("0", F32(new[] { 1f, 2 })), Storages()[1], Storages()[2] });
        using var ckpt = TorchCheckpoint.Open(shortStorage);
        e = Assert.ThrowsAny<InvalidDataException>(() => ckpt.Read(ckpt.StateDict()["weight"], "weight"));
        Assert.Contains(shortStorage, e.Message);
        Assert.Contains("'weight'", e.Message);
    }
    [Fact]
    public void IntegersBeyondInt32DecodeAsIntegers()
    {
        // Python pickles every int outside int32 with LONG1; these come back as longs, not BigIntegers.
        foreach (var v in new[] { 1L << 31, (1L << 40) + 7, -(1L << 33), long.MaxValue, long.MinValue, 255L, 0L })
        {
            var bytes = new Pickle().Proto(2).Long1(v).Stop().Bytes;
            Assert.Equal(v, Assert.IsType<long>(RestrictedUnpickler.Load(bytes, "ints.pkl")));
        }
        var huge = System.Numerics.BigInteger.One << 70;
        Assert.Equal(huge, RestrictedUnpickler.Load(new Pickle().Proto(2).Long1(huge).Stop().Bytes, "huge.pkl"));
    }

    [Fact]
    public void AStorageOfMoreThan2Pow31ElementsIsCheckedAgainstTheArchiveNotRefusedAsANonInteger()
    {
        using var dir = new TempDir();
        var path = dir.File("big.pth");
        long numel = (1L << 31) + 5;
        var p = new Pickle().Proto(2).EmptyDict().Str("w").Tensor("FloatStorage", "0", numel, 1L << 31, new long[] { 4 }, new long[] { 1 }).SetItem().Stop();
        TorchZip(path, p.Bytes, new[] { ("0", F32(new[] { 1f, 2 })) });
        using var ckpt = TorchCheckpoint.Open(path);
        var w = ckpt.StateDict()["w"];
        Assert.Equal(numel, w.Storage.Numel);
        Assert.Equal(1L << 31, w.StorageOffset);
        // The declared 8 GiB is compared with the entry before anything is allocated.
        var e = Assert.Throws<InvalidDataException>(() => ckpt.Read(w, "w"));
        Assert.Contains($"needs {numel * 4}", e.Message);

        // A view past the end of such a storage is still refused.
        var past = new Pickle().Proto(2).EmptyDict().Str("w").Tensor("FloatStorage", "0", numel, numel - 2, new long[] { 4 }, new long[] { 1 }).SetItem().Stop();
        var pastPath = dir.File("past.pth");
        TorchZip(pastPath, past.Bytes, new[] { ("0", F32(new[] { 1f, 2 })) });
        e = Assert.Throws<InvalidDataException>(() => TorchCheckpoint.Open(pastPath));
        Assert.Contains("runs past storage", e.Message);
    }

    [Fact]
    public void ViewsStreamIntoATargetTensorWithConversion()
    {
        using var dir = new TempDir();
        var path = dir.File("sd.pth");
        TorchZip(path, StateDictPickle(), Storages());
        using var ckpt = TorchCheckpoint.Open(path);
        var sd = ckpt.StateDict();
        using var w = torch.zeros(2, 3);
        ckpt.ReadInto(sd["weight"], w, "weight");               // dense: straight into w's memory
        Assert.Equal(new[] { 1f, 2, 3, 4, 5, 6 }, Floats(w));
        using var wt = torch.zeros(3, 2);
        ckpt.ReadInto(sd["weight_t"], wt, "weight_t");          // strided: storage, then one copy
        Assert.Equal(new[] { 1f, 4, 2, 5, 3, 6 }, Floats(wt));
        using var h = torch.zeros(2);
        ckpt.ReadInto(sd["half"], h, "half");                   // f16 at an offset into a float32 tensor
        Assert.Equal(new[] { 1f, -2f }, Floats(h));
        Assert.Throws<ArgumentException>(() => ckpt.ReadInto(sd["weight"], torch.zeros(3, 2), "weight"));
    }

    [Fact]
    public void TensorBytesMoveLargeTensorsInPieces()
    {
        // Spans stop at 2 GiB; a small piece size exercises the same path.
        using var src = torch.arange(10, dtype: ScalarType.Float32).reshape(2, 5);
        using var ms = new MemoryStream();
        TensorBytes.Write(ms, src, maxSpan: 12);
        Assert.Equal(40, ms.Length);
        ms.Position = 0;
        using var dst = torch.zeros(2, 5);
        Assert.Equal(40, TensorBytes.Fill(ms, dst, maxSpan: 12));
        Assert.Equal(Floats(src), Floats(dst));
        ms.SetLength(20); ms.Position = 0;
        Assert.Equal(20, TensorBytes.Fill(ms, torch.zeros(2, 5), maxSpan: 12));
    }
}
