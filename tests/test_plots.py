"""Plots read at a glance: labelled bands and data edge, a colour bar for the colour, readable log ticks."""

import matplotlib

matplotlib.use("Agg")


def test_fit_plot_explains_its_bands_colours_and_the_edge_of_the_data(chinchilla_fit):
    import matplotlib.pyplot as plt

    ax = chinchilla_fit.plot(x="D", extend=3.0)
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert "largest fitted D" in labels and "law, 90% band" in labels
    assert "a new run, 90% band (run noise too)" in labels
    colorbars = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel().startswith("N (parameters)")
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(ticks) >= 4 and all("^" not in t and "times" not in t for t in ticks), ticks  # plain numbers
    plt.close(ax.figure)
