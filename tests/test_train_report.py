"""The run's report files: the plot's title stays one line whatever the graph is called."""

from cnngraph.train.report import TITLE_CHARS, one_line, write_plot

HISTORY = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "train_acc": 0.5, "test_acc": 0.4}]


def test_a_huge_graph_name_is_cut_to_one_line_and_the_plot_is_written(tmp_path):
    name = "x" * 100_000
    assert len(one_line(name)) == TITLE_CHARS and one_line(name).endswith("…")
    assert one_line("lenet5 on digits") == "lenet5 on digits"
    write_plot(tmp_path / "curves.png", HISTORY, name)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
