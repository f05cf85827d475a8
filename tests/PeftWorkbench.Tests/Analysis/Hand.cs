using PeftWorkbench.Analysis;

namespace PeftWorkbench.Tests.Analysis;

/// <summary>Hand-made predictions: each sample's logits are `margin` on the predicted class and 0 elsewhere, so the
/// predicted label is given and confidence rises with the margin.</summary>
public static class Hand
{
    public static MethodPredictions Make(string method, long[] labels, int[] predicted, double[]? margins = null, int classes = 3, string task = "t", string split = "test")
    {
        var logits = new float[labels.Length, classes];
        for (int i = 0; i < labels.Length; i++) logits[i, predicted[i]] = (float)(margins?[i] ?? 2.0);
        return MethodPredictions.FromArrays(method, task, logits, labels, split);
    }

    /// <summary>Rows of logits given directly.</summary>
    public static MethodPredictions Rows(string method, long[] labels, float[][] rows, string task = "t", string split = "test")
    {
        var logits = new float[rows.Length, rows[0].Length];
        for (int i = 0; i < rows.Length; i++) for (int c = 0; c < rows[i].Length; c++) logits[i, c] = rows[i][c];
        return MethodPredictions.FromArrays(method, task, logits, labels, split);
    }

    public static readonly long[] Labels6 = { 0, 1, 2, 0, 1, 2 };

    /// <summary>A wrong on {4, 5}, B wrong on {2, 4}, C wrong on {0}.</summary>
    public static Predictions Three(double[]? ma = null, double[]? mb = null, double[]? mc = null) => new(new[]
    {
        Make("A", Labels6, new[] { 0, 1, 2, 0, 0, 0 }, ma),
        Make("B", Labels6, new[] { 0, 1, 0, 0, 0, 2 }, mb),
        Make("C", Labels6, new[] { 1, 1, 2, 0, 1, 2 }, mc),
    });
}
