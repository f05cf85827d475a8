using System.Diagnostics;
using System.Text.Json;
using PeftWorkbench.Bench;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>
/// Round trips with Debian's PyTorch (python3-torch, installed by environment/setup.sh; CI has it, so a
/// missing torch fails rather than skips): what we export, torch.load(weights_only=True) reads and a timm-named
/// PyTorch ViT (environment/reference/bench.py's) loads strictly, with the same logits; what torch.save writes,
/// we load, with the same logits. The ViT-B/16-sized file (346 MB) is made once for the class and deleted after.
/// </summary>
public sealed class TorchInteropTests : IClassFixture<TorchInteropTests.VitB16File>
{
    readonly VitB16File big;
    public TorchInteropTests(VitB16File big) => this.big = big;

    /// <summary>A ViT-B/16 state dict written by torch.save, at dir/model.pth (where `bench io-child` looks).</summary>
    public sealed class VitB16File : IDisposable
    {
        internal TempDir Dir { get; } = new();
        public string Path => Dir.File("model.pth");
        public VitB16File() => Python("make", "--config", ReferenceBench.ConfigJson(VitConfig.Preset("vit-b16")), "--weights", Path);
        public void Dispose() => Dir.Dispose();
    }

    /// <summary>Temp files start with a dot: hidden, which directory listings skip by default.</summary>
    static readonly EnumerationOptions WithHidden = new() { AttributesToSkip = 0 };

    static VitConfig Config => Small(classes: 5) with { Name = "interop" };

    static string Python(params string[] args)
    {
        var psi = new ProcessStartInfo(ReferenceBench.DefaultPython) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.TestData("Checkpoints", "torch_interop.py"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (args[0] != "dump") { psi.ArgumentList.Add("--bench"); psi.ArgumentList.Add(ReferenceBench.FindScript()!); }
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"torch_interop.py {args[0]} failed ({p.ExitCode}): {err.Result}");
        return output;
    }

    static Tensor Logits(VisionTransformer m, Tensor x)
    {
        m.eval();
        using var _ = torch.no_grad();
        return m.forward(x);
    }

    [Theory]
    [InlineData("model.pth")]
    [InlineData("model.safetensors")]
    public void WhatWeSaveLoadsInPyTorchWithTheSameLogits(string name)
    {
        using var dir = new TempDir();
        using var model = new VisionTransformer(Config, seed: 3);
        using var x = torch.randn(new long[] { 2, 3, 16, 16 }, generator: new torch.Generator(5));
        using var logits = Logits(model, x);
        VitWeights.Save(model, dir.File(name));
        TorchExport.Save(dir.File("io.pth"), new Dictionary<string, Tensor> { ["x"] = x, ["logits"] = logits });

        var r = JsonDocument.Parse(Python("check", "--config", ReferenceBench.ConfigJson(Config), "--weights", dir.File(name), "--io", dir.File("io.pth"))).RootElement;
        Assert.Equal(new[] { 2, 5 }, r.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.True(r.GetProperty("max_abs_diff").GetDouble() < 1e-5, $"logits differ by {r.GetProperty("max_abs_diff").GetDouble()}");
    }

    [Fact]
    public void WhatTorchSavesLoadsHereWithTheSameLogits()
    {
        using var dir = new TempDir();
        Python("make", "--config", ReferenceBench.ConfigJson(Config), "--seed", "7", "--weights", dir.File("w.pth"), "--io", dir.File("io.pth"));
        using var model = new VisionTransformer(Config, seed: 0);
        var report = VitWeights.Load(model, dir.File("w.pth"));
        Assert.Empty(report.Skipped);
        using var ckpt = TorchCheckpoint.Open(dir.File("io.pth"));
        var io = ckpt.StateDict();
        using var x = ckpt.Read(io["x"], "x");
        using var expected = ckpt.Read(io["logits"], "logits");
        using var ours = Logits(model, x);
        Assert.True(ours.allclose(expected, rtol: 0, atol: 1e-5), $"logits differ by {(ours - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void TransposedOffsetAndHalfTensorsExportAsTheirValues()
    {
        using var dir = new TempDir();
        using var baseT = torch.arange(12, dtype: ScalarType.Float32).reshape(3, 4);
        using var transposed = baseT.t();                       // non-contiguous
        using var offset = baseT.narrow(0, 1, 2);               // a view starting at element 4
        using var half = (baseT / 8).to(ScalarType.Float16).narrow(1, 1, 2);  // half, strided and offset
        var path = dir.File("odd.pth");
        TorchExport.Save(path, new Dictionary<string, Tensor> { ["t"] = transposed, ["o"] = offset, ["h"] = half });

        var sd = JsonDocument.Parse(Python("dump", "--file", path)).RootElement;
        void Expect(string key, string dtype, long[] shape, Tensor want)
        {
            var e = sd.GetProperty(key);
            Assert.Equal(dtype, e.GetProperty("dtype").GetString());
            Assert.Equal(shape, e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()));
            Assert.Equal(Floats(want), e.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));
        }
        Expect("t", "float32", new long[] { 4, 3 }, transposed);
        Expect("o", "float32", new long[] { 2, 4 }, offset);
        Expect("h", "float16", new long[] { 3, 2 }, half);
    }

    [Fact]
    public void OverwritingALargerFileLeavesOnlyTheNewCheckpoint()
    {
        using var dir = new TempDir();
        var path = dir.File("w.pth");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)0xAB, 1 << 20).ToArray());
        using var model = new VisionTransformer(Config, seed: 1);
        VitWeights.Save(model, path);
        Assert.True(new FileInfo(path).Length < 1 << 19, $"the file is {new FileInfo(path).Length} bytes: the old file's tail survived");
        var sd = JsonDocument.Parse(Python("dump", "--file", path)).RootElement;
        Assert.Equal(VitWeights.StateDict(model).Keys.Order(), sd.EnumerateObject().Select(p => p.Name).Order());
        Assert.DoesNotContain(Directory.GetFiles(dir.Path, "*", WithHidden), f => f.EndsWith(".tmp"));
    }

    [Fact]
    public void AWriterThatDiesMidWriteLeavesTheOldFileIntact()
    {
        using var dir = new TempDir();
        var target = dir.File("out.pth");
        using (var model = new VisionTransformer(Config, seed: 1)) VitWeights.Save(model, target);
        var before = File.ReadAllBytes(target);

        // Half the bytes, then the writer dies: while it wrote, the target was never touched (so a kill at any
        // moment leaves it as it was), and afterwards it is still the old, loadable file with no temp file beside it.
        Assert.Throws<IOException>(() => AtomicFile.Write(target, fs =>
        {
            fs.Write(before.AsSpan(0, before.Length / 2));
            fs.Flush();
            Assert.Equal(before, File.ReadAllBytes(target));
            throw new IOException("writer died");
        }));
        Assert.Equal(before, File.ReadAllBytes(target));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path, "*", WithHidden), f => f.EndsWith(".tmp"));
        using var again = new VisionTransformer(Config, seed: 2);
        VitWeights.Load(again, target);
    }

    [Fact]
    public async Task LoadingAVitB16PthGrowsRssByLessThan50MB()
    {
        // In a child process (`peft bench io-child`): the test process's own peaks cannot mask or inflate it.
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { TestPaths.CliDll(), "bench", "io-child", "--preset", "vit-b16", "--dir", big.Dir.Path, "--format", "pth", "--side", "ours", "--op", "load" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var line = p.StandardOutput.ReadToEnd().Split('\n').Last(l => l.StartsWith('{'));
        p.WaitForExit();
        var r = IoBench.FromJson(line);
        Assert.Null(r.Error);
        Assert.True(r.RssGrowthBytes is > 0 and < 50_000_000, $"RSS grew by {r.RssGrowthBytes / 1e6:F0} MB loading {big.Path}; {await err}");
    }
}
