using PeftWorkbench.Data;
using SkiaSharp;

namespace PeftWorkbench.Tests.Data;

public class VtabFolderTests
{
    static void Png(string path, SKColor color, int w = 12, int h = 9)
    {
        using var bmp = new SKBitmap(w, h);
        bmp.Erase(color);
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>root/eurosat (a known task, 10 classes) with red (label 0) and blue (label 3) PNGs.</summary>
    static string MakeTask(TempDir dir, Func<int, string>? line = null)
    {
        var task = Path.Combine(dir.Path, "eurosat");
        Directory.CreateDirectory(Path.Combine(task, "images"));
        for (int i = 0; i < 6; i++) Png(Path.Combine(task, "images", $"im {i}.png"), i % 2 == 0 ? SKColors.Red : SKColors.Blue);
        string L(int i) => line?.Invoke(i) ?? $"images/im {i}.png {(i % 2 == 0 ? 0 : 3)}";
        File.WriteAllLines(Path.Combine(task, "train800.txt"), new[] { L(0), L(1), L(2) });
        File.WriteAllLines(Path.Combine(task, "val200.txt"), new[] { L(3) });
        File.WriteAllLines(Path.Combine(task, "train800val200.txt"), new[] { L(0), L(1), L(2), L(3) });
        File.WriteAllLines(Path.Combine(task, "test.txt"), new[] { L(4), L(5), "" });
        return task;
    }

    [Fact]
    public void Folder_splits_load_resized_and_normalised()
    {
        using var dir = new TempDir();
        MakeTask(dir);
        var suite = Suite.FromVtabFolder(dir.Path, imageSize: 16);
        var info = Assert.Single(suite.Tasks);
        Assert.Equal(("eurosat", "specialized", 10, 3, 1, 4, 2), (info.Name, info.Group, info.NumClasses, info.Train800, info.Val200, info.Train800Val200, info.Test));
        using var task = suite.Load("eurosat");
        Assert.Equal(new long[] { 3, 3, 16, 16 }, task.Train800.Images.shape);
        Assert.Equal(new long[] { 0, 3, 0 }, task.Train800.Labels.data<long>().ToArray());
        Assert.Equal(2, task.Test.Count);
        // Red image: R = 255 -> +1, G = B = 0 -> -1 under mean = std = 0.5.
        var red = task.Train800.Images[0];
        Assert.Equal(1f, red[0].mean().item<float>(), 3);
        Assert.Equal(-1f, red[1].mean().item<float>(), 3);
        Assert.Equal(1f, task.Train800.Images[1][2].mean().item<float>(), 3);
    }

    [Fact]
    public void Bad_lists_name_the_list_file_and_line()
    {
        using (var dir = new TempDir())
        {
            MakeTask(dir, i => i == 2 ? "images/im 2.png 10" : $"images/im {i}.png 1");
            var e = Assert.Throws<InvalidDataException>(() => Suite.FromVtabFolder(dir.Path, 8).LoadSplit("eurosat", "train800"));
            Assert.Contains("train800.txt", e.Message); Assert.Contains("line 3", e.Message); Assert.Contains("label 10", e.Message);
        }
        using (var dir = new TempDir())
        {
            MakeTask(dir, i => i == 1 ? "images/missing.png 1" : $"images/im {i}.png 1");
            var e = Assert.Throws<FileNotFoundException>(() => Suite.FromVtabFolder(dir.Path, 8).LoadSplit("eurosat", "train800"));
            Assert.Contains("train800.txt", e.Message); Assert.Contains("line 2", e.Message); Assert.Contains("missing.png", e.Message);
        }
        using (var dir = new TempDir())
        {
            var task = MakeTask(dir);
            File.WriteAllText(Path.Combine(task, "images", "im 4.png"), "not an image");
            var e = Assert.Throws<InvalidDataException>(() => Suite.FromVtabFolder(dir.Path, 8).LoadSplit("eurosat", "test"));
            Assert.Contains("test.txt", e.Message); Assert.Contains("line 1", e.Message); Assert.Contains("im 4.png", e.Message);
        }
        using (var dir = new TempDir())
        {
            MakeTask(dir, i => i == 0 ? "images/im 0.png" : $"images/im {i}.png x");
            var e = Assert.Throws<InvalidDataException>(() => Suite.FromVtabFolder(dir.Path, 8).LoadSplit("eurosat", "val200"));
            Assert.Contains("val200.txt", e.Message); Assert.Contains("line 1", e.Message);
        }
    }
}
