"""The run's report files: curves with loss, accuracy in percent, the learning rate and the best epoch
marked, and a title that stays one line whatever the graph is called."""

from cnngraph.train.report import TITLE_CHARS, curves, one_line, write_plot

HISTORY = [{"epoch": e, "lr": 0.1 / e, "train_loss": 1.0 / e, "test_loss": 1.1 / e, "train_acc": 0.3 * e,
            "test_acc": acc} for e, acc in ((1, 0.4), (2, 0.7), (3, 0.6))]


def test_curves_show_loss_accuracy_in_percent_the_rate_and_the_best_epoch():
    fig = curves(HISTORY, "tiny on blobs")
    loss, acc, lr = fig.axes
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy (%)", "learning rate (end of epoch)"]
    test_acc = next(line for line in acc.get_lines() if line.get_label() == "test")
    assert list(test_acc.get_ydata()) == [40.0, 70.0, 60.0]
    assert list(lr.get_lines()[0].get_ydata()) == [row["lr"] for row in HISTORY]
    for ax in fig.axes:  # the best test accuracy (epoch 2) is marked on every panel
        marker = next(line for line in ax.get_lines() if line.get_label().startswith("best"))
        assert list(marker.get_xdata()) == [2, 2]


def test_a_huge_graph_name_is_cut_to_one_line_and_the_plot_is_written(tmp_path):
    name = "x" * 100_000
    assert len(one_line(name)) == TITLE_CHARS and one_line(name).endswith("…")
    assert one_line("lenet5 on digits") == "lenet5 on digits"
    write_plot(tmp_path / "curves.png", HISTORY, name)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
