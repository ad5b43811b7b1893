"""Accuracy for document classification."""

import dataclasses


@dataclasses.dataclass
class AccuracyScores:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self):
        return 100.0 * self.correct / self.total if self.total else 0.0

    primary = accuracy  # the number model selection maximises

    def to_dict(self):
        return {"accuracy": self.accuracy, "correct": self.correct, "total": self.total}


def score(documents, predicted_ids):
    """Accuracy (0-100) of predicted class ids against the documents' labels."""
    if len(documents) != len(predicted_ids):
        raise ValueError(f"{len(documents)} documents but {len(predicted_ids)} predictions")
    correct = sum(int(d.label == int(p)) for d, p in zip(documents, predicted_ids))
    return AccuracyScores(correct, len(documents))
