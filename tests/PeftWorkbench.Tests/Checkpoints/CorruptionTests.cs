using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>
/// Damaged files must fail with one of the documented exceptions (naming the file) or load cleanly:
/// never a crash, never a stray NullReference/IndexOutOfRange, never a half-loaded model.
/// </summary>
public class CorruptionTests
{
    static bool Documented(Exception e) =>
        e is InvalidDataException or IOException or KeyNotFoundException or NotSupportedException;

    static void Mutate(string good, string bad, int from, int to, int seed, int count, VisionTransformer model)
    {
        var bytes = File.ReadAllBytes(good);
        var before = Snapshot(model);
        var r = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var b = (byte[])bytes.Clone();
            int flips = 1 + r.Next(3);
            for (int f = 0; f < flips; f++) b[r.Next(from, Math.Min(to, b.Length))] = (byte)r.Next(256);
            File.WriteAllBytes(bad, b);
            try
            {
                VitWeights.Load(model, bad);
                // A mutation that still loads may legitimately change values: restore for the next round.
                using (TorchSharp.torch.no_grad())
                    foreach (var (name, p) in model.named_parameters()) p.copy_(before[name]);
            }
            catch (Exception e)
            {
                Assert.True(Documented(e), $"mutation {i}: {e.GetType().Name}: {e.Message}");
                Assert.Contains(bad, e.Message);
                AssertUnchanged(before, model);
            }
        }
    }

    [Fact]
    public void DamagedPickleFailsCleanly()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 5);
        var tensors = source.named_parameters().Select(p => (p.name, p.parameter.shape, Floats(p.parameter))).ToList();
        // Damage the pickle only (zip entries carry CRCs that would catch it first), then re-zip.
        var pkl = Path.Combine(dir.Path, "p.pth");
        StateDictPth(pkl, tensors);
        using var zip = System.IO.Compression.ZipFile.OpenRead(pkl);
        var entries = zip.Entries.Select(e => { using var s = e.Open(); var ms = new MemoryStream(); s.CopyTo(ms); return (e.FullName, ms.ToArray()); }).ToList();
        var pickle = entries.Single(e => e.FullName.EndsWith("data.pkl")).Item2;
        using var model = new VisionTransformer(Small(), seed: 1);
        var before = Snapshot(model);
        var r = new Random(1);
        var bad = dir.File("bad.pth");
        for (int i = 0; i < 60; i++)
        {
            var p = (byte[])pickle.Clone();
            p[r.Next(p.Length)] = (byte)r.Next(256);
            Zip(bad, entries.Select(e => e.FullName.EndsWith("data.pkl") ? (e.FullName, p) : e));
            try
            {
                VitWeights.Load(model, bad);
                using (TorchSharp.torch.no_grad())
                    foreach (var (name, prm) in model.named_parameters()) prm.copy_(before[name]);
            }
            catch (Exception e)
            {
                Assert.True(Documented(e), $"mutation {i}: {e.GetType().Name}: {e.Message}");
                Assert.Contains(bad, e.Message);
                AssertUnchanged(before, model);
            }
        }
    }

    [Fact]
    public void DamagedSafetensorsHeaderFailsCleanly()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 5);
        var good = dir.File("good.safetensors");
        VitWeights.Save(source, good);
        long headerEnd = 8 + BitConverter.ToInt64(File.ReadAllBytes(good), 0);
        using var model = new VisionTransformer(Small(), seed: 1);
        Mutate(good, dir.File("bad.safetensors"), 0, (int)headerEnd, 2, 60, model);
    }

    [Fact]
    public void DamagedNpzFailsCleanly()
    {
        using var dir = new TempDir();
        var good = dir.File("good.npz");
        // Stored (not deflated) entries, so damage reaches the npy headers; zip CRCs may also catch it.
        var arrays = new[] { ("cls", new long[] { 1, 1, 32 }), ("embedding/bias", new long[] { 32 }) };
        Zip(good, arrays.Select(a => (a.Item1 + ".npy", NpyBytes("<f4", a.Item2, F32(Values(a.Item2.Aggregate(1L, (x, y) => x * y), 1))))));
        using var model = new VisionTransformer(Small(), seed: 1);
        Mutate(good, dir.File("bad.npz"), 0, (int)new FileInfo(good).Length, 3, 100, model);
    }
}
