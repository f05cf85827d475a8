using System.Text;
using PeftWorkbench.Peft;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Peft;

using Peft = global::PeftWorkbench.Peft.Peft;

/// <summary>One ViT-B/16 (about 350 MB) shared by the tests of a class: methods attach and detach on it.</summary>
public sealed class VitB16Fixture : IDisposable
{
    public VisionTransformer Vit { get; } = new(VitConfig.Preset("vit-b16"), seed: 0);
    public void Dispose() => Vit.Dispose();
}

public class StudyParameterCountTests : IClassFixture<VitB16Fixture>
{
    readonly VitB16Fixture fixture;
    public StudyParameterCountTests(VitB16Fixture fixture) => this.fixture = fixture;

    public sealed record Row(string Task, string Method, long Params, string Hyperparameters);

    /// <summary>Rows of TestData/vtab1k_results.csv (the study's published results; see the README next to it).</summary>
    public static IReadOnlyList<Row> ReadRows()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "vtab1k_results.csv");
        var lines = File.ReadAllLines(path);
        var header = SplitCsv(lines[0]);
        int task = header.IndexOf("task"), method = header.IndexOf("method"),
            count = header.IndexOf("trainable_params_excl_head"), hp = header.IndexOf("selected_hyperparameters");
        return lines.Skip(1).Where(l => l.Length > 0).Select(l => SplitCsv(l))
            .Select(f => new Row(f[task], f[method], long.Parse(f[count]), f[hp])).ToList();
    }

    internal static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var cur = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { cur.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else cur.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(cur.ToString()); cur.Clear(); }
            else cur.Append(c);
        }
        fields.Add(cur.ToString());
        return fields;
    }

    [Fact]
    public void TheCsvCoversAllSixteenMethodsOnNineteenTasks()
    {
        var rows = ReadRows();
        Assert.Equal(19 * 16, rows.Count);
        Assert.Equal(MethodRegistry.BuiltIn.Select(m => m.Id).OrderBy(x => x), rows.Select(r => r.Method).Distinct().OrderBy(x => x));
    }

    [Fact]
    public void TrainableCountsOnTheVitB16ShapeEqualTheStudysForEveryRow()
    {
        var vit = fixture.Vit;
        var failures = new List<string>();
        // Rows sharing a method and hyperparameters share one attach.
        foreach (var group in ReadRows().GroupBy(r => (r.Method, r.Hyperparameters)))
        {
            var model = Peft.Attach(vit, group.Key.Method, MethodRegistry.ParseJson(group.Key.Hyperparameters));
            long got = model.TrainableParameterCountExcludingHead;
            foreach (var row in group)
                if (row.Params != got) failures.Add($"{row.Task}/{row.Method} {row.Hyperparameters}: study {row.Params}, ours {got}");
            model.Detach();
        }
        Assert.Empty(failures);
        // Attach/detach left the backbone as it was.
        Assert.Equal(86_567_656, vit.parameters().Sum(p => p.numel()));
        Assert.All(vit.parameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void EveryPointOfEveryGridIsValidOnVitB16()
    {
        var c = VitConfig.Preset("vit-b16");
        int points = 0;
        foreach (var m in MethodRegistry.BuiltIn)
            foreach (var point in m.GridPoints())
            {
                var options = MethodRegistry.Create(m.Id, point, c);
                foreach (var (key, value) in point)
                    Assert.Equal(value, OptionValues.Format(options.ToHyperparameters()[key]));
                points++;
            }
        // LoRA 4, Houlsby 16, Pfeiffer 20, AdaptFormer 9, ConvPass 20, RepAdapter 15, FacT 15 + 15, VPT 5 + 4, six without a grid.
        Assert.Equal(4 + 16 + 20 + 9 + 20 + 15 + 15 + 15 + 5 + 4 + 6, points);
    }
}
