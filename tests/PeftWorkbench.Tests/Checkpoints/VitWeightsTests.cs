using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using static PeftWorkbench.Tests.Checkpoints.FormatWriters;

namespace PeftWorkbench.Tests.Checkpoints;

public class VitWeightsTests
{
    const int D = 32, H = 2, HD = 16, P = 8, C = 3, Hidden = 128, Tokens = 5;

    /// <summary>Every array of a Google ViT .npz (Flax layouts) for the 2-block test ViT, with distinct values.</summary>
    static List<(string Name, long[] Shape, float[] Values)> GoogleArrays(int classes = 3)
    {
        var list = new List<(string, long[], float[])>();
        int seed = 100;
        void Add(string name, params long[] shape) => list.Add((name, shape, Values(shape.Aggregate(1L, (a, b) => a * b), seed++)));
        Add("embedding/kernel", P, P, C, D);
        Add("embedding/bias", D);
        Add("cls", 1, 1, D);
        Add("Transformer/posembed_input/pos_embedding", 1, Tokens, D);
        Add("Transformer/encoder_norm/scale", D);
        Add("Transformer/encoder_norm/bias", D);
        Add("head/kernel", D, classes);
        Add("head/bias", classes);
        for (int i = 0; i < 2; i++)
        {
            string b = $"Transformer/encoderblock_{i}/", m = b + "MultiHeadDotProductAttention_1/";
            Add(b + "LayerNorm_0/scale", D); Add(b + "LayerNorm_0/bias", D);
            Add(b + "LayerNorm_2/scale", D); Add(b + "LayerNorm_2/bias", D);
            Add(b + "MlpBlock_3/Dense_0/kernel", D, Hidden); Add(b + "MlpBlock_3/Dense_0/bias", Hidden);
            Add(b + "MlpBlock_3/Dense_1/kernel", Hidden, D); Add(b + "MlpBlock_3/Dense_1/bias", D);
            foreach (var n in new[] { "query", "key", "value" }) { Add(m + n + "/kernel", D, H, HD); Add(m + n + "/bias", H, HD); }
            Add(m + "out/kernel", H, HD, D); Add(m + "out/bias", D);
        }
        return list;
    }

    static string WriteNpz(TempDir dir, IEnumerable<(string Name, long[] Shape, float[] Values)> arrays, string file = "vit.npz")
    {
        var path = dir.File(file);
        // Half the entries deflated, half stored: numpy writes either.
        Zip(path, arrays.Select(a => (a.Name + ".npy", NpyBytes("<f4", a.Shape, F32(a.Values)))), deflate: n => n.Length % 2 == 0);
        return path;
    }

    static Dictionary<string, float[]> Params(VisionTransformer m) => m.named_parameters().ToDictionary(p => p.name, p => Floats(p.parameter));

    [Fact]
    public void GoogleNpzMapsEveryWeightElementByElement()
    {
        using var dir = new TempDir();
        var arrays = GoogleArrays();
        var path = WriteNpz(dir, arrays);
        using var model = new VisionTransformer(Small(), seed: 1);
        var report = VitWeights.Load(model, path);
        Assert.Equal(model.named_parameters().Count(), report.Loaded);
        Assert.Contains("Google", report.Format);
        Assert.Empty(report.Skipped);
        Assert.Empty(report.Resampled);

        var w = arrays.ToDictionary(a => a.Name, a => a.Values);
        var p = Params(model);
        // Patch kernel: HWIO [y, x, in, out] -> OIHW [out, in, y, x].
        for (int o = 0; o < D; o++) for (int i = 0; i < C; i++) for (int y = 0; y < P; y++) for (int x = 0; x < P; x++)
            Assert.Equal(w["embedding/kernel"][((y * P + x) * C + i) * D + o], p["patch_embed.proj.weight"][((o * C + i) * P + y) * P + x]);
        Assert.Equal(w["embedding/bias"], p["patch_embed.proj.bias"]);
        Assert.Equal(w["cls"], p["cls_token"]);
        Assert.Equal(w["Transformer/posembed_input/pos_embedding"], p["pos_embed"]);
        Assert.Equal(w["Transformer/encoder_norm/scale"], p["norm.weight"]);
        Assert.Equal(w["Transformer/encoder_norm/bias"], p["norm.bias"]);
        for (int c = 0; c < C; c++) for (int i = 0; i < D; i++)
            Assert.Equal(w["head/kernel"][i * C + c], p["head.weight"][c * D + i]);
        Assert.Equal(w["head/bias"], p["head.bias"]);
        for (int blk = 0; blk < 2; blk++)
        {
            string s = $"Transformer/encoderblock_{blk}/", m = s + "MultiHeadDotProductAttention_1/", t = $"blocks.{blk}.";
            Assert.Equal(w[s + "LayerNorm_0/scale"], p[t + "norm1.weight"]);
            Assert.Equal(w[s + "LayerNorm_0/bias"], p[t + "norm1.bias"]);
            Assert.Equal(w[s + "LayerNorm_2/scale"], p[t + "norm2.weight"]);
            Assert.Equal(w[s + "LayerNorm_2/bias"], p[t + "norm2.bias"]);
            // qkv rows: query block, then key, then value; each row = head * head_dim + d; kernel [in, head, d].
            var names = new[] { "query", "key", "value" };
            for (int j = 0; j < 3; j++) for (int hh = 0; hh < H; hh++) for (int dd = 0; dd < HD; dd++)
            {
                int row = j * D + hh * HD + dd;
                for (int i = 0; i < D; i++)
                    Assert.Equal(w[m + names[j] + "/kernel"][(i * H + hh) * HD + dd], p[t + "attn.qkv.weight"][row * D + i]);
                Assert.Equal(w[m + names[j] + "/bias"][hh * HD + dd], p[t + "attn.qkv.bias"][row]);
            }
            // out kernel [head, d, out] -> proj.weight [out, head * head_dim + d].
            for (int o = 0; o < D; o++) for (int hh = 0; hh < H; hh++) for (int dd = 0; dd < HD; dd++)
                Assert.Equal(w[m + "out/kernel"][(hh * HD + dd) * D + o], p[t + "attn.proj.weight"][o * D + hh * HD + dd]);
            Assert.Equal(w[m + "out/bias"], p[t + "attn.proj.bias"]);
            for (int o = 0; o < Hidden; o++) for (int i = 0; i < D; i++)
            {
                Assert.Equal(w[s + "MlpBlock_3/Dense_0/kernel"][i * Hidden + o], p[t + "mlp.fc1.weight"][o * D + i]);
                Assert.Equal(w[s + "MlpBlock_3/Dense_1/kernel"][o * D + i], p[t + "mlp.fc2.weight"][i * Hidden + o]);
            }
            Assert.Equal(w[s + "MlpBlock_3/Dense_0/bias"], p[t + "mlp.fc1.bias"]);
            Assert.Equal(w[s + "MlpBlock_3/Dense_1/bias"], p[t + "mlp.fc2.bias"]);
        }
    }

    [Fact]
    public void GoogleNpzWithOptimizerPrefixLoadsTheTargetOnly()
    {
        using var dir = new TempDir();
        var arrays = GoogleArrays();
        var prefixed = arrays.Select(a => (Name: "opt/target/" + a.Name, a.Shape, a.Values))
            .Append(("opt/state/param_states/cls/grad_ema", new long[] { 1, 1, D }, Values(D, 3)));
        var path = WriteNpz(dir, prefixed);
        using var model = new VisionTransformer(Small(), seed: 1);
        var report = VitWeights.Load(model, path);
        Assert.Contains(report.Notes, n => n.Contains("ignored 1 arrays outside opt/target/"));
        Assert.Equal(arrays.Single(a => a.Name == "cls").Values, Floats(model.cls_token));
    }

    [Fact]
    public void HeadIsSkippedAndSaidWhenTheClassCountDiffers()
    {
        using var dir = new TempDir();
        var path = WriteNpz(dir, GoogleArrays(classes: 21));
        using var model = new VisionTransformer(Small(classes: 10), seed: 1);
        var head = Floats(model.named_parameters().First(p => p.name == "head.weight").parameter);
        var report = VitWeights.Load(model, path);
        Assert.Contains("head skipped: checkpoint has 21 classes, model 10", report.Skipped);
        Assert.Contains("head skipped: checkpoint has 21 classes, model 10", report.ToString());
        Assert.Equal(head, Floats(model.named_parameters().First(p => p.name == "head.weight").parameter));
        Assert.Equal(model.named_parameters().Count() - 2, report.Loaded);

        // Asked not to skip: the head becomes a mis-shaped key instead.
        using var strict = new VisionTransformer(Small(classes: 10), seed: 1);
        var e = Assert.Throws<CheckpointMismatchException>(() => VitWeights.Load(strict, path, new VitLoadOptions { SkipMismatchedHead = false }));
        Assert.Contains(e.Mismatched, m => m.StartsWith("head.weight (from head/kernel): expected [10, 32], got [21, 32]"));

        // ImageNet-21k npz files carry a pre-logits layer the model lacks: its head cannot apply, so both are skipped.
        var withPreLogits = GoogleArrays().Append(("pre_logits/kernel", new long[] { D, D }, Values(D * D, 9))).Append(("pre_logits/bias", new long[] { D }, Values(D, 10)));
        var path2 = WriteNpz(dir, withPreLogits, "prelogits.npz");
        using var m3 = new VisionTransformer(Small(), seed: 1);
        report = VitWeights.Load(m3, path2);
        Assert.Contains(report.Skipped, s => s.StartsWith("pre_logits skipped"));
        Assert.Contains(report.Skipped, s => s.StartsWith("head skipped"));
    }

    [Fact]
    public void MissingUnexpectedAndMisShapedKeysAreAllListedAndNothingIsLoaded()
    {
        using var dir = new TempDir();
        var arrays = GoogleArrays()
            .Where(a => a.Name != "Transformer/encoderblock_1/LayerNorm_2/bias"                                       // missing
                     && a.Name != "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/value/kernel")            // missing part of qkv
            .Select(a => a.Name == "Transformer/encoderblock_0/MlpBlock_3/Dense_1/bias" ? (Name: a.Name, Shape: new long[] { 31 }, Values: a.Values[..31]) : a)  // mis-shaped
            .Select(a => a.Name == "Transformer/encoderblock_1/MultiHeadDotProductAttention_1/key/kernel" ? (Name: a.Name, Shape: new long[] { D, D }, Values: a.Values) : a)
            .Append(("Transformer/encoderblock_0/Extra/scale", new long[] { 4 }, Values(4, 1)))                             // unexpected
            .Append(("Transformer/encoderblock_2/LayerNorm_0/scale", new long[] { D }, Values(D, 2)))                       // a third block
            .ToList();
        var path = WriteNpz(dir, arrays);
        using var model = new VisionTransformer(Small(), seed: 1);
        var before = Snapshot(model);
        var e = Assert.Throws<CheckpointMismatchException>(() => VitWeights.Load(model, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("nothing was loaded", e.Message);
        Assert.Contains(e.Missing, m => m.StartsWith("blocks.1.norm2.bias [32]"));
        Assert.Contains(e.Missing, m => m.StartsWith("blocks.0.attn.qkv.weight") && m.Contains("value/kernel"));
        Assert.Contains(e.Unexpected, u => u.StartsWith("Transformer/encoderblock_0/Extra/scale"));
        Assert.Contains(e.Unexpected, u => u.StartsWith("blocks.2.norm1.weight (from Transformer/encoderblock_2/LayerNorm_0/scale)"));
        Assert.Contains(e.Mismatched, m => m == "blocks.0.mlp.fc2.bias (from Transformer/encoderblock_0/MlpBlock_3/Dense_1/bias): expected [32], got [31]");
        Assert.Contains(e.Mismatched, m => m.StartsWith("Transformer/encoderblock_1/MultiHeadDotProductAttention_1/key/kernel: expected [32, 2, 16], got [32, 32]"));
        AssertUnchanged(before, model);
    }

    [Fact]
    public void TimmStateDictPthLoadsNestedUnderModel()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 5);
        var tensors = source.named_parameters().Select(p => (p.name, p.parameter.shape, Floats(p.parameter))).ToList();
        var path = dir.File("timm.pth");
        StateDictPth(path, tensors, nestUnder: "model");
        using var model = new VisionTransformer(Small(), seed: 6);
        var report = VitWeights.Load(model, path);
        Assert.Contains("timm", report.Format);
        Assert.Equal(tensors.Count, report.Loaded);
        Assert.Equal(Params(source), Params(model));
    }

    [Fact]
    public void OpenAiClipStateDictMapsToTimmNames()
    {
        using var dir = new TempDir();
        var cfg = Small(classes: 16, clip: true);
        using var source = new VisionTransformer(cfg, seed: 7);
        var sp = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var list = new List<(string, long[], float[])>
        {
            ("visual.conv1.weight", sp["patch_embed.proj.weight"].shape, Floats(sp["patch_embed.proj.weight"])),
            ("visual.class_embedding", new long[] { D }, Floats(sp["cls_token"])),
            ("visual.positional_embedding", new long[] { Tokens, D }, Floats(sp["pos_embed"])),
            ("visual.ln_pre.weight", new long[] { D }, Floats(sp["norm_pre.weight"])),
            ("visual.ln_pre.bias", new long[] { D }, Floats(sp["norm_pre.bias"])),
            ("visual.ln_post.weight", new long[] { D }, Floats(sp["norm.weight"])),
            ("visual.ln_post.bias", new long[] { D }, Floats(sp["norm.bias"])),
            ("visual.proj", new long[] { D, 16 }, Floats(sp["head.weight"].t())),
            ("token_embedding.weight", new long[] { 10, 8 }, Values(80, 1)),
            ("transformer.resblocks.0.ln_1.weight", new long[] { 8 }, Values(8, 2)),  // text tower: ignored
            ("logit_scale", Array.Empty<long>(), new[] { 4.6f }),
        };
        var names = new Dictionary<string, string>
        {
            ["ln_1.weight"] = "norm1.weight", ["ln_1.bias"] = "norm1.bias", ["attn.in_proj_weight"] = "attn.qkv.weight",
            ["attn.in_proj_bias"] = "attn.qkv.bias", ["attn.out_proj.weight"] = "attn.proj.weight", ["attn.out_proj.bias"] = "attn.proj.bias",
            ["ln_2.weight"] = "norm2.weight", ["ln_2.bias"] = "norm2.bias", ["mlp.c_fc.weight"] = "mlp.fc1.weight",
            ["mlp.c_fc.bias"] = "mlp.fc1.bias", ["mlp.c_proj.weight"] = "mlp.fc2.weight", ["mlp.c_proj.bias"] = "mlp.fc2.bias",
        };
        for (int i = 0; i < 2; i++)
            foreach (var (clip, timm) in names)
                list.Add(($"visual.transformer.resblocks.{i}.{clip}", sp[$"blocks.{i}.{timm}"].shape, Floats(sp[$"blocks.{i}.{timm}"])));
        var path = dir.File("clip.bin");
        StateDictPth(path, list);

        using var model = new VisionTransformer(cfg, seed: 8);
        using (torch.no_grad()) model.named_parameters().First(p => p.name == "head.bias").parameter.fill_(3f);
        var report = VitWeights.Load(model, path);
        Assert.Contains("CLIP", report.Format);
        Assert.Contains(report.Notes, n => n.Contains("visual.proj") && n.Contains("zero bias"));
        Assert.Contains(report.Notes, n => n.Contains("ignored 3"));
        var got = Params(model);
        foreach (var (name, values) in Params(source))
            if (name == "head.bias") Assert.All(got[name], v => Assert.Equal(0f, v));
            else Assert.Equal(values, got[name]);
    }

    [Fact]
    public void SaveThenLoadRoundTripsAndHalfPrecisionConverts()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 11);
        var path = dir.File("vit.safetensors");
        VitWeights.Save(source, path);
        Assert.Contains("test-2block", SafetensorsFile.Open(path).Metadata["peft_workbench.vit_config"]);
        using var model = new VisionTransformer(Small(), seed: 12);
        var report = VitWeights.Load(model, path);
        Assert.Contains("safetensors, timm names", report.Format);
        Assert.Equal(Params(source), Params(model));

        // F16 and BF16 checkpoints load into the F32 model as the rounded values.
        foreach (var half in new[] { ScalarType.Float16, ScalarType.BFloat16 })
        {
            var halfPath = dir.File($"vit-{half}.safetensors");
            SafetensorsFile.Write(halfPath, source.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(half)));
            using var m = new VisionTransformer(Small(), seed: 13);
            var r = VitWeights.Load(m, halfPath);
            Assert.Contains(r.Notes, n => n.Contains(half.ToString()));
            foreach (var (name, p) in m.named_parameters())
            {
                Assert.Equal(ScalarType.Float32, p.dtype);
                Assert.Equal(Floats(source.named_parameters().First(q => q.name == name).parameter.detach().to(half)), Floats(p));
            }
        }
    }

    [Fact]
    public void WrongDtypeAndWrongShapeNameFileAndKeyAndLeaveTheModelAlone()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 11);
        var tensors = source.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach());
        tensors["norm.weight"] = torch.ones(D, ScalarType.Int64);
        tensors["blocks.0.attn.proj.weight"] = torch.zeros(D, D + 1);
        tensors.Remove("cls_token");
        var path = dir.File("bad.safetensors");
        SafetensorsFile.Write(path, tensors);
        using var model = new VisionTransformer(Small(), seed: 1);
        var before = Snapshot(model);
        var e = Assert.Throws<CheckpointMismatchException>(() => VitWeights.Load(model, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("mis-shaped: norm.weight: dtype Int64", e.Message);
        Assert.Contains("mis-shaped: blocks.0.attn.proj.weight: expected [32, 32], got [32, 33]", e.Message);
        Assert.Contains("missing: cls_token [1, 1, 32]", e.Message);
        AssertUnchanged(before, model);
    }

    [Fact]
    public void ReadFailuresAfterTheChecksStillLeaveTheModelUntouched()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(), seed: 5);
        var tensors = source.named_parameters().Select(p => (p.name, p.parameter.shape, Floats(p.parameter))).ToList();
        var good = dir.File("good.pth");
        StateDictPth(good, tensors);
        // Corrupt the last storage's length: names and shapes all check out, the read fails late.
        var bad = dir.File("bad.pth");
        using (var src = System.IO.Compression.ZipFile.OpenRead(good))
            Zip(bad, src.Entries.Select(e =>
            {
                using var s = e.Open(); var ms = new MemoryStream(); s.CopyTo(ms);
                var bytes = ms.ToArray();
                return (e.FullName, e.FullName == $"archive/data/{tensors.Count - 1}" ? bytes[..^4] : bytes);
            }).ToList());
        using var model = new VisionTransformer(Small(), seed: 1);
        var before = Snapshot(model);
        var e = Assert.ThrowsAny<InvalidDataException>(() => VitWeights.Load(model, bad));
        Assert.Contains(bad, e.Message);
        Assert.Contains(tensors[^1].name, e.Message);
        AssertUnchanged(before, model);

        // A truncated npz: refused with the file's name, the model unchanged.
        var npz = WriteNpz(dir, GoogleArrays());
        var all = File.ReadAllBytes(npz);
        var cut = dir.File("cut.npz");
        File.WriteAllBytes(cut, all[..(all.Length * 2 / 3)]);
        var ex = Assert.ThrowsAny<Exception>(() => VitWeights.Load(model, cut));
        Assert.Contains(cut, ex.Message);
        AssertUnchanged(before, model);

        var junk = dir.File("junk.ckpt");
        File.WriteAllText(junk, "hello");
        ex = Assert.ThrowsAny<InvalidDataException>(() => VitWeights.Load(model, junk));
        Assert.Contains(junk, ex.Message);
    }

    [Fact]
    public void PosEmbedFromA2x2GridIsResampledIntoA4x4Model()
    {
        using var dir = new TempDir();
        using var source = new VisionTransformer(Small(imageSize: 16), seed: 3);
        using (torch.no_grad())
        {
            source.pos_embed.fill_(0.5f);
            source.pos_embed[0, 0].fill_(7f);  // the class token's position: must be kept as it is
        }
        var path = dir.File("grid2.safetensors");
        VitWeights.Save(source, path);
        using var model = new VisionTransformer(Small(imageSize: 32), seed: 4);
        var report = VitWeights.Load(model, path);
        Assert.Equal(new long[] { 1, 17, D }, model.pos_embed.shape);
        Assert.Single(report.Resampled);
        Assert.Contains("grid 2x2 -> 4x4", report.Resampled[0]);
        var pe = Floats(model.pos_embed);
        Assert.All(pe[..D], v => Assert.Equal(7f, v));
        Assert.All(pe[D..], v => Assert.Equal(0.5f, v, 5));
        Assert.Equal(Floats(source.cls_token), Floats(model.cls_token));

        // Off by option: a mis-shaped pos_embed instead.
        using var strict = new VisionTransformer(Small(imageSize: 32), seed: 4);
        var e = Assert.Throws<CheckpointMismatchException>(() => VitWeights.Load(strict, path, new VitLoadOptions { ResamplePosEmbed = false }));
        Assert.Contains(e.Mismatched, m => m.StartsWith("pos_embed: expected [1, 17, 32], got [1, 5, 32]"));
    }

    /// <summary>PyTorch's bicubic upsampling (align_corners=False, A=-0.75, border samples clamped), written out.</summary>
    static double[,] Bicubic(double[,] src, int outSize)
    {
        int n = src.GetLength(0);
        const double A = -0.75;
        double C1(double x) => ((A + 2) * x - (A + 3)) * x * x + 1;
        double C2(double x) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
        (int[] idx, double[] w) Taps(int o)
        {
            double s = (o + 0.5) * n / outSize - 0.5;
            int i0 = (int)Math.Floor(s);
            double t = s - i0;
            return (Enumerable.Range(-1, 4).Select(k => Math.Clamp(i0 + k, 0, n - 1)).ToArray(), new[] { C2(t + 1), C1(t), C1(1 - t), C2(2 - t) });
        }
        var r = new double[outSize, outSize];
        for (int y = 0; y < outSize; y++)
        for (int x = 0; x < outSize; x++)
        {
            var (iy, wy) = Taps(y); var (ix, wx) = Taps(x);
            for (int a = 0; a < 4; a++) for (int b = 0; b < 4; b++) r[y, x] += wy[a] * wx[b] * src[iy[a], ix[b]];
        }
        return r;
    }

    [Fact]
    public void ResamplingMatchesBicubicInterpolationWrittenOut()
    {
        const int dim = 3, g = 3, ng = 5;
        var values = Values((1 + g * g) * dim, 21);
        var pe = torch.tensor(values).reshape(1, 1 + g * g, dim);
        var outT = VitWeights.ResamplePosEmbed(pe, ng);
        Assert.Equal(new long[] { 1, 1 + ng * ng, dim }, outT.shape);
        var got = Floats(outT);
        Assert.Equal(values[..dim], got[..dim]);
        for (int c = 0; c < dim; c++)
        {
            var grid = new double[g, g];
            for (int y = 0; y < g; y++) for (int x = 0; x < g; x++) grid[y, x] = values[(1 + y * g + x) * dim + c];
            var want = Bicubic(grid, ng);
            for (int y = 0; y < ng; y++) for (int x = 0; x < ng; x++)
                Assert.Equal(want[y, x], got[(1 + y * ng + x) * dim + c], 5);
        }
        // Same grid: identity.
        Assert.Equal(values, Floats(VitWeights.ResamplePosEmbed(pe, g)), new FloatTolerance(1e-6f));
    }

    sealed class FloatTolerance(float tol) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tol;
        public int GetHashCode(float f) => 0;
    }
}
