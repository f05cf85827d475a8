using System.Diagnostics;
using System.Text;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Vit;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>Checkpoint readers under hostile files: every container truncated at many offsets, safetensors headers with
/// wrongly typed fields and huge declared sizes. Each load ends in a documented exception naming the file with the model
/// unchanged, or loads exactly what the intact file holds, within a time bound.</summary>
public class CheckpointFuzzTests
{
    static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>Loads <paramref name="bad"/> into the model: a clean error (and the model unchanged) or the intact values.</summary>
    static bool LoadsCleanly(VisionTransformer model, string bad, Dictionary<string, TorchSharp.torch.Tensor> before, Dictionary<string, TorchSharp.torch.Tensor> intact)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            VitWeights.Load(model, bad);
            Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
            AssertUnchanged(intact, model); // loaded: it must be what the intact file holds
            using (TorchSharp.torch.no_grad())
                foreach (var (name, p) in model.named_parameters()) p.copy_(before[name]);
            return false;
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            Assert.True(clock.Elapsed < Bound, $"took {clock.Elapsed}");
            Assert.True(e is InvalidDataException or IOException or KeyNotFoundException or NotSupportedException, $"{e.GetType().Name}: {e.Message}");
            Assert.Contains(bad, e.Message);
            AssertUnchanged(before, model);
            return true;
        }
    }

    [Fact]
    public void EveryContainerTruncatedAtManyOffsets()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 5);
        var tensors = source.named_parameters().Select(p => (p.name, p.parameter.shape, Floats(p.parameter))).ToList();
        var files = new List<string> { dir.File("good.safetensors"), dir.File("good.pth") };
        VitWeights.Save(source, files[0]);
        StateDictPth(files[1], tensors);
        using var model = new VisionTransformer(Small(), seed: 1);
        var before = Snapshot(model);
        VitWeights.Load(model, files[0]);
        var intact = Snapshot(model);
        using (TorchSharp.torch.no_grad()) foreach (var (name, p) in model.named_parameters()) p.copy_(before[name]);

        foreach (var good in files)
        {
            var bytes = File.ReadAllBytes(good);
            var bad = dir.File("bad" + Path.GetExtension(good));
            int tried = 0, refused = 0;
            foreach (var at in FuzzTable.Offsets(bytes.Length, 60 * FuzzTable.Scale).Where(a => a < bytes.Length))
            {
                File.WriteAllBytes(bad, bytes[..at]);
                if (LoadsCleanly(model, bad, before, intact)) refused++;
                tried++;
            }
            Assert.True(refused > 0);
            FuzzTable.Record("checkpoints", $"{Path.GetExtension(good)} truncated at many offsets", tried, tried);
        }
    }

    /// <summary>A safetensors file with the given header text and data bytes.</summary>
    static void Safetensors(string path, string header, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)h.Length));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
    }

    [Fact]
    public void SafetensorsHeadersWithWrongTypesAndHugeSizes()
    {
        using var dir = new TempDir();
        var bad = dir.File("bad.safetensors");
        var values = new[] { "5", "-1", "1e300", "true", "null", "\"F32\"", "[]", "{}", "[1,[2]]", "[-1,4]", "[4611686018427387904,2]", "[0,99999999999]", "\"" + new string('x', 5000) + "\"" };
        var fields = new[] { "dtype", "shape", "data_offsets" };
        var valid = new Dictionary<string, string> { ["dtype"] = "\"F32\"", ["shape"] = "[2,2]", ["data_offsets"] = "[0,16]" };
        int tried = 0;
        foreach (var field in fields)
            foreach (var value in values)
            {
                var entry = string.Join(",", fields.Select(f => $"\"{f}\":{(f == field ? value : valid[f])}"));
                Safetensors(bad, $"{{\"w\":{{{entry}}},\"__metadata__\":{{\"format\":\"pt\"}}}}", 16);
                var clock = Stopwatch.StartNew();
                try
                {
                    var file = SafetensorsFile.Open(bad);
                    foreach (var name in file.Keys) using (file.Read(name)) { }
                }
                catch (Exception e) when (e is InvalidDataException or IOException or KeyNotFoundException or NotSupportedException)
                {
                    Assert.Contains(bad, e.Message);
                }
                Assert.True(clock.Elapsed < Bound, $"{field}={value} took {clock.Elapsed}");
                tried++;
            }
        // Huge declared header lengths, metadata of the wrong type, duplicated keys, not an object.
        foreach (var header in new[] { "{\"__metadata__\":5}", "{\"__metadata__\":{\"a\":5}}", "{\"w\":{},\"w\":{}}", "[]", "{", "{\"w\":5}" })
        {
            Safetensors(bad, header, 0);
            var e = Record.Exception(() => SafetensorsFile.Open(bad));
            Assert.True(e is InvalidDataException, $"{header}: {e?.GetType().Name}: {e?.Message}");
            Assert.Contains(bad, e!.Message);
            tried++;
        }
        foreach (var length in new[] { ulong.MaxValue, 1UL << 40, 100_000_000UL })
        {
            using (var fs = File.Create(bad)) { fs.Write(BitConverter.GetBytes(length)); fs.Write(Encoding.ASCII.GetBytes("{}")); }
            var e = Record.Exception(() => SafetensorsFile.Open(bad));
            Assert.True(e is InvalidDataException && e.Message.Contains(bad), $"{length}: {e?.Message}");
            tried++;
        }
        FuzzTable.Record("checkpoints", "safetensors header: wrong JSON types, huge sizes", tried, tried);
    }

    [Fact]
    public void NpyHeadersDeclaringHugeOrWrongShapes()
    {
        using var dir = new TempDir();
        var bad = dir.File("bad.npy");
        var shapes = new[] { new long[] { 1L << 40 }, new long[] { 1L << 31, 1L << 31 }, new long[] { -4 }, new long[] { 5 }, new long[] { 0, 1L << 62 } };
        foreach (var shape in shapes)
        {
            File.WriteAllBytes(bad, NpyBytes("<f4", shape, new byte[16]));
            var clock = Stopwatch.StartNew();
            var e = Record.Exception(() => { using var t = Npy.Read(bad); });
            Assert.True(clock.Elapsed < Bound);
            if (shape.Contains(0) && e is null) continue; // an empty array, whatever the other dimensions: numpy reads it too
            else Assert.True(e is InvalidDataException or IOException or NotSupportedException && e.Message.Contains(bad), $"[{string.Join(",", shape)}]: {e?.GetType().Name}: {e?.Message}");
        }
        var good = NpyBytes("<f4", new long[] { 2, 3 }, F32(Values(6, 1)));
        int cuts = 0;
        foreach (var at in FuzzTable.Offsets(good.Length, 40 * FuzzTable.Scale).Where(a => a < good.Length))
        {
            File.WriteAllBytes(bad, good[..at]);
            var e = Record.Exception(() => { using var t = Npy.Read(bad); });
            Assert.True(e is InvalidDataException or IOException && e.Message.Contains(bad), $"cut at {at}: {e?.GetType().Name}: {e?.Message}");
            cuts++;
        }
        FuzzTable.Record("checkpoints", ".npy: huge/negative shapes, truncated at many offsets", shapes.Length + cuts, shapes.Length + cuts);
    }
}
