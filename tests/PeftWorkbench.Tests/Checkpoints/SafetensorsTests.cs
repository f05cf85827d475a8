using System.Buffers.Binary;
using System.Text;
using PeftWorkbench.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

public class SafetensorsTests
{
    [Theory]
    [InlineData("F32")] [InlineData("F16")] [InlineData("BF16")] [InlineData("F64")]
    [InlineData("I64")] [InlineData("I32")] [InlineData("I16")] [InlineData("I8")]
    [InlineData("U8")] [InlineData("BOOL")]
    public void RoundTripKeepsDtypeShapeAndEveryByte(string dtype)
    {
        using var dir = new TempDir();
        var type = SafetensorsFile.ScalarTypeOf(dtype);
        var values = torch.tensor(new float[] { -3.5f, -1, 0, 0.25f, 1, 2, 7, 100, 65504, -0.0f, 3.140625f, 42 }).reshape(3, 4);
        var tensors = new Dictionary<string, Tensor>
        {
            ["weight"] = type == ScalarType.Bool ? values.gt(0.5) : values.to(type),
            ["scalar"] = torch.tensor(7f).to(type == ScalarType.Bool ? ScalarType.Bool : type),
            ["empty"] = torch.zeros(new long[] { 0, 3 }, type),
            ["strided"] = (type == ScalarType.Bool ? values.gt(0) : values.to(type)).t(),  // non-contiguous input
        };
        var path = dir.File("t.safetensors");
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["note"] = "round trip" });

        var f = SafetensorsFile.Open(path);
        Assert.Equal("round trip", f.Metadata["note"]);
        Assert.Equal(new[] { "empty", "scalar", "strided", "weight" }, f.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(dtype, f.Entries["weight"].DType);
        var back = f.ReadAll();
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.dtype, back[name].dtype);
            Assert.Equal(t.shape, back[name].shape);
            Assert.Equal(t.contiguous().bytes.ToArray(), back[name].bytes.ToArray());
        }
        // Data section starts 8-byte aligned: the writer pads the header.
        Assert.Equal(0, (8 + (long)BitConverter.ToUInt64(File.ReadAllBytes(path), 0)) % 8);
    }

    /// <summary>A file written byte by byte from the format description, not by our writer.</summary>
    [Fact]
    public void ReadsAFileWrittenByHandFromTheSpec()
    {
        using var dir = new TempDir();
        string header = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[16,40]}," +
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[40,44]}}";
        var hb = Encoding.UTF8.GetBytes(header + "   ");  // trailing spaces are allowed padding
        var bytes = new List<byte>();
        var len = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)hb.Length);
        bytes.AddRange(len); bytes.AddRange(hb);
        bytes.AddRange(F32(new[] { 1f, -2f, 0.5f, 1e-3f }));
        bytes.AddRange(I64(new[] { 5L, -6L, long.MaxValue }));
        bytes.AddRange(new byte[] { 0x00, 0x3C, 0x00, 0xC0 });  // F16 1.0 and -2.0, little-endian
        var path = dir.File("hand.safetensors");
        File.WriteAllBytes(path, bytes.ToArray());

        var f = SafetensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(new long[] { 2, 2 }, f.Entries["a"].Shape);
        Assert.Equal(new[] { 1f, -2f, 0.5f, 1e-3f }, f.Read("a").data<float>().ToArray());
        Assert.Equal(new[] { 5L, -6L, long.MaxValue }, f.Read("b").data<long>().ToArray());
        var h = f.Read("h");
        Assert.Equal(ScalarType.Float16, h.dtype);
        Assert.Equal(new[] { 1f, -2f }, Floats(h));
    }

    static string WriteRaw(TempDir dir, string header, int dataBytes, string name = "bad.safetensors")
    {
        var hb = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + hb.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)hb.Length);
        hb.CopyTo(b, 8);
        var path = dir.File(name);
        File.WriteAllBytes(path, b);
        return path;
    }

    [Fact]
    public void TruncatedFileNamesTheFile()
    {
        using var dir = new TempDir();
        var path = dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[] { 1, 2, 3 });
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);

        // A valid file cut short inside its data: the offsets no longer fit.
        var good = dir.File("good.safetensors");
        SafetensorsFile.Write(good, new Dictionary<string, Tensor> { ["w"] = torch.ones(4, 4) });
        var all = File.ReadAllBytes(good);
        File.WriteAllBytes(path, all[..^10]);
        e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void HeaderLongerThanTheFileIsRefused()
    {
        using var dir = new TempDir();
        var path = dir.File("long.safetensors");
        var b = new byte[40];
        BinaryPrimitives.WriteUInt64LittleEndian(b, 1000);
        File.WriteAllBytes(path, b);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("1000", e.Message);

        BinaryPrimitives.WriteUInt64LittleEndian(b, ulong.MaxValue);  // absurd length: capped before any allocation
        File.WriteAllBytes(path, b);
        e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("cap", e.Message);
    }

    [Fact]
    public void OffsetsOutOfRangeNameFileAndTensor()
    {
        using var dir = new TempDir();
        var path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'x'", e.Message);
        Assert.Contains("outside", e.Message);

        path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "span.safetensors");
        e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("need 8", e.Message);

        path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap.safetensors");
        e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("overlap", e.Message);

        path = WriteRaw(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 20, "hole.safetensors");
        e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("cover 8 bytes", e.Message);
    }

    [Fact]
    public void UnknownDtypeNamesFileAndTensor()
    {
        using var dir = new TempDir();
        var path = WriteRaw(dir, "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'q'", e.Message);
        Assert.Contains("F8_E4M3", e.Message);
    }

    [Fact]
    public void MalformedHeadersAreClearErrors()
    {
        using var dir = new TempDir();
        foreach (var (header, expect) in new[]
        {
            ("[1, 2, 3]", "not"),
            ("{\"w\": {\"dtype\": \"F32\"", "not valid JSON"),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", "negative"),
            ("{\"__metadata__\":{\"n\":3}}", "strings"),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets"),
        })
        {
            var path = WriteRaw(dir, header, 0);
            var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
            Assert.Contains(path, e.Message);
            Assert.Contains(expect, e.Message);
        }
    }

    [Fact]
    public void ReadsLazilyOneTensorAtATime()
    {
        using var dir = new TempDir();
        var path = dir.File("lazy.safetensors");
        SafetensorsFile.Write(path, new Dictionary<string, Tensor> { ["a"] = torch.arange(6f).reshape(2, 3), ["b"] = torch.tensor(new long[] { 9, 9, 9, 9, 9 }) });
        var f = SafetensorsFile.Open(path);
        // Overwrite b's bytes on disk after opening: reading a still works, b shows the new bytes (read on request).
        var bytes = File.ReadAllBytes(path);
        bytes[^1] = 0x7f;
        File.WriteAllBytes(path, bytes);
        Assert.Equal(new[] { 0f, 1, 2, 3, 4, 5 }, f.Read("a").data<float>().ToArray());
        Assert.NotEqual(9L, f.Read("b").data<long>()[4]);
        var e = Assert.Throws<KeyNotFoundException>(() => f.Read("zzz"));
        Assert.Contains("zzz", e.Message);
    }
}
