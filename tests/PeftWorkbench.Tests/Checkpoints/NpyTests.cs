using PeftWorkbench.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

public class NpyTests
{
    static Tensor ReadBytes(byte[] npy, string name = "x.npy") => Npy.Read(new MemoryStream(npy), name);

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)]
    public void ReadsEveryHeaderVersion(int major)
    {
        var t = ReadBytes(NpyBytes("<f4", new long[] { 2, 3 }, F32(new[] { 1f, 2, 3, 4, 5, 6 }), major: major));
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        Assert.Equal(new[] { 1f, 2, 3, 4, 5, 6 }, t.data<float>().ToArray());
    }

    [Fact]
    public void ReadsEachSupportedDtype()
    {
        var f8 = new byte[16]; BitConverter.GetBytes(1.5).CopyTo(f8, 0); BitConverter.GetBytes(-2.25).CopyTo(f8, 8);
        var t = ReadBytes(NpyBytes("<f8", new long[] { 2 }, f8));
        Assert.Equal(ScalarType.Float64, t.dtype);
        Assert.Equal(new[] { 1.5, -2.25 }, t.data<double>().ToArray());

        t = ReadBytes(NpyBytes("<f2", new long[] { 2 }, new byte[] { 0x00, 0x3C, 0x00, 0xC0 }));
        Assert.Equal(ScalarType.Float16, t.dtype);
        Assert.Equal(new[] { 1f, -2f }, Floats(t));

        t = ReadBytes(NpyBytes("<i8", new long[] { 3 }, I64(new[] { 1L, -1L, 1L << 40 })));
        Assert.Equal(new[] { 1L, -1L, 1L << 40 }, t.data<long>().ToArray());

        t = ReadBytes(NpyBytes("<i4", new long[] { 2 }, new byte[] { 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff }));
        Assert.Equal(new[] { 1, -1 }, t.data<int>().ToArray());

        t = ReadBytes(NpyBytes("|u1", new long[] { 3 }, new byte[] { 0, 128, 255 }));
        Assert.Equal(new byte[] { 0, 128, 255 }, t.data<byte>().ToArray());

        t = ReadBytes(NpyBytes("|b1", new long[] { 3 }, new byte[] { 1, 0, 1 }));
        Assert.Equal(new[] { true, false, true }, t.data<bool>().ToArray());

        t = ReadBytes(NpyBytes("<f4", Array.Empty<long>(), F32(new[] { 4.5f })));  // a 0-d array
        Assert.Empty(t.shape);
        Assert.Equal(4.5f, t.item<float>());
    }

    [Fact]
    public void FortranOrderComesBackInCOrder()
    {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        var t = ReadBytes(NpyBytes("<f4", new long[] { 2, 3 }, F32(new[] { 1f, 4, 2, 5, 3, 6 }), fortran: true));
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        Assert.True(t.is_contiguous());
        Assert.Equal(new[] { 1f, 2, 3, 4, 5, 6 }, t.data<float>().ToArray());
    }

    [Fact]
    public void BigEndianIsConverted()
    {
        var t = ReadBytes(NpyBytes(">f4", new long[] { 3 }, F32(new[] { 1f, -0.5f, 1e6f }, bigEndian: true)));
        Assert.Equal(new[] { 1f, -0.5f, 1e6f }, t.data<float>().ToArray());
    }

    [Fact]
    public void BadArraysNameTheSource()
    {
        var e = Assert.Throws<InvalidDataException>(() => ReadBytes(NpyBytes("<c8", new long[] { 1 }, new byte[8]), "arr.npy"));
        Assert.Contains("arr.npy", e.Message);
        Assert.Contains("<c8", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ReadBytes(NpyBytes("<f4", new long[] { 4 }, F32(new[] { 1f, 2 })), "short.npy"));
        Assert.Contains("short.npy", e.Message);
        Assert.Contains("truncated", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ReadBytes(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, "junk.npy"));
        Assert.Contains("junk.npy", e.Message);

        var good = NpyBytes("<f4", new long[] { 1 }, F32(new[] { 1f }));
        e = Assert.Throws<InvalidDataException>(() => ReadBytes(good[..20], "cut.npy"));  // header cut short
        Assert.Contains("cut.npy", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ReadBytes(NpyBytes("<f4", new long[] { 1 }, F32(new[] { 1f })).Select((b, i) => i == 18 ? (byte)'!' : b).ToArray(), "garbled.npy"));
        Assert.Contains("garbled.npy", e.Message);
    }

    [Fact]
    public void NpzReadsStoredAndDeflatedEntriesLazily()
    {
        using var dir = new TempDir();
        var path = dir.File("a.npz");
        Zip(path, new[]
        {
            ("w.npy", NpyBytes("<f4", new long[] { 2, 2 }, F32(new[] { 1f, 2, 3, 4 }))),
            ("dir/b.npy", NpyBytes("<i8", new long[] { 2 }, I64(new[] { 7L, 8L }))),
        }, deflate: n => n.StartsWith("dir"));
        using var npz = NpzFile.Open(path);
        Assert.Equal(new[] { "dir/b", "w" }, npz.Keys.OrderBy(k => k));
        Assert.Equal(new long[] { 2, 2 }, npz.Header("w").Shape);
        Assert.Equal(new[] { 1f, 2, 3, 4 }, npz.Read("w").data<float>().ToArray());
        Assert.Equal(new[] { 7L, 8L }, npz.Read("dir/b").data<long>().ToArray());
        var e = Assert.Throws<KeyNotFoundException>(() => npz.Read("nope"));
        Assert.Contains(path, e.Message);
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public void NpzWithBrokenArrayNamesFileAndKey()
    {
        using var dir = new TempDir();
        var path = dir.File("broken.npz");
        Zip(path, new[] { ("w.npy", NpyBytes("<f4", new long[] { 8 }, F32(new[] { 1f, 2 }))) });
        using var npz = NpzFile.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => npz.Read("w"));
        Assert.Contains(path, e.Message);
        Assert.Contains("'w'", e.Message);

        var notZip = dir.File("notzip.npz");
        File.WriteAllBytes(notZip, new byte[100]);
        e = Assert.Throws<InvalidDataException>(() => NpzFile.Open(notZip));
        Assert.Contains(notZip, e.Message);
    }
}
