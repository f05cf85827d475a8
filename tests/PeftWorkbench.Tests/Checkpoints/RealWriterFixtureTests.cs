using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

/// <summary>
/// Files written by numpy 1.24 and PyTorch 1.13 themselves (TestData/Checkpoints/make_fixtures.py): the
/// hand-written files of the other tests follow the specifications; these show real writers' output loads too.
/// </summary>
public class RealWriterFixtureTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "Checkpoints", name);

    static Dictionary<string, float[]> Params(VisionTransformer m) => m.named_parameters().ToDictionary(p => p.name, p => Floats(p.parameter));

    [Fact]
    public void NumpyNpzAndPyTorchPthOfTheSameWeightsLoadIdentically()
    {
        // The .pth holds the npz's weights mapped to timm's layout in numpy, following timm's _load_weights.
        using var fromNpz = new VisionTransformer(Small(), seed: 1);
        var r1 = VitWeights.Load(fromNpz, Fixture("google-2block.npz"));
        using var fromPth = new VisionTransformer(Small(), seed: 2);
        var r2 = VitWeights.Load(fromPth, Fixture("timm-2block.pth"));  // nested under "model", next to "epoch" and "arch"
        Assert.Contains("Google", r1.Format);
        Assert.Contains("timm", r2.Format);
        Assert.Equal(r1.Loaded, r2.Loaded);
        Assert.Equal(Params(fromPth), Params(fromNpz));

        using var fromHalf = new VisionTransformer(Small(), seed: 3);
        var r3 = VitWeights.Load(fromHalf, Fixture("timm-2block-half.pth"));
        Assert.Contains(r3.Notes, n => n.Contains("Float16"));
        foreach (var (name, p) in fromPth.named_parameters())
            Assert.Equal(Floats(p.detach().to(ScalarType.Float16)), Floats(fromHalf.named_parameters().First(q => q.name == name).parameter));
    }

    [Fact]
    public void PyTorchCornerCasesLoad()
    {
        using var ckpt = TorchCheckpoint.Open(Fixture("misc.pth"));
        var sd = ckpt.StateDict();
        Assert.Equal(new[] { 0f, 1, 2, 3, 4, 5 }, ckpt.Read(sd["w"]).data<float>().ToArray());      // an nn.Parameter
        Assert.Equal(new[] { 2f, 3, 4, 5, 6, 7 }, ckpt.Read(sd["view"]).data<float>().ToArray());   // a view at storage offset 2
        Assert.Equal(new long[] { 2, 3 }, ckpt.Read(sd["view"]).shape);
        Assert.Equal(new[] { 1L, 2, 3 }, ckpt.Read(sd["i"]).data<long>().ToArray());
        Assert.Equal(new[] { true, false }, ckpt.Read(sd["b"]).data<bool>().ToArray());
    }

    [Fact]
    public void PyTorchPickleOfOsSystemIsRefused()
    {
        var path = Fixture("evil.pth");
        var e = Assert.Throws<UnsafePickleException>(() => TorchCheckpoint.Open(path));
        Assert.Contains("system'", e.Message);  // os.system pickles as posix.system on Linux
        Assert.Contains(path, e.Message);

        using var model = new VisionTransformer(Small(), seed: 1);
        Assert.Throws<UnsafePickleException>(() => VitWeights.Load(model, path));
        var ts = Assert.ThrowsAny<InvalidDataException>(() => VitWeights.Load(model, Fixture("torchscript.pt")));
        Assert.Contains("TorchScript", ts.Message);
    }

    [Fact]
    public void NumpyFortranAndBigEndianArraysRead()
    {
        var f = Npy.Read(Fixture("fortran.npy"));
        Assert.Equal(new long[] { 3, 4 }, f.shape);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (double)i), f.data<double>().ToArray());
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, Npy.Read(Fixture("big-endian.npy")).data<long>().ToArray());
    }
}
