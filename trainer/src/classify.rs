//! Training of the digit classifier with cross-entropy, and its test accuracy.

use anyhow::{Context, Result, anyhow};
use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use shared::classifier::{Classifier, ClassifierConfig, argmax_rows, export_classifier};
use shared::grid::{GrayImage, PixelRange, tile};
use shared::latent::SeededRng;
use shared::mnist::Mnist;
use shared::weights::StorageType;
use shared::{IMAGE_PIXELS, NUM_CLASSES};

use crate::autoencoding::eval_batches;
use crate::checkpoint::{Checkpoint, restore_single, single_files};
use crate::data::images_tensor;
use crate::sample::GRID_COLUMNS;
use crate::train::{Session, TrainBatch, Trainee};

/// Most misread test digits shown in the per-epoch grid.
const MAX_SHOWN_ERRORS: usize = 64;

/// Hyper-parameters of a classifier run.
#[derive(Config, Debug)]
pub struct ClassifierTrainingConfig {
    /// Architecture.
    pub model: ClassifierConfig,
    /// Images per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
}

/// Trains the classifier.
pub fn run(session: &Session, resume: Option<Checkpoint>) -> Result<()> {
    let settings = session.settings;
    let config = ClassifierTrainingConfig::new(ClassifierConfig::new())
        .with_batch_size(settings.batch_size)
        .with_learning_rate(settings.learning_rate);
    let mut trainee = ClassifierRun {
        model: config.model.init(&session.training),
        optimizer: AdamConfig::new().init(),
        config,
    };
    let state;
    (trainee.model, trainee.optimizer, state) = restore_single(resume, trainee.model, trainee.optimizer)?;
    session.run(trainee, state)
}

/// A classifier being trained.
pub struct ClassifierRun {
    /// The network.
    pub model: Classifier,
    /// Its optimizer.
    pub optimizer: ModuleOptimizer,
    /// The hyper-parameters.
    pub config: ClassifierTrainingConfig,
}

impl Trainee for ClassifierRun {
    fn pixel_range(&self) -> PixelRange {
        PixelRange::Unit
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["cross_entropy", "accuracy"]
    }

    // NOTE: dropout draws from the device's generator, which checkpoints do not save, so a
    // resumed classifier run differs slightly from an uninterrupted one.
    fn step(mut self, batch: TrainBatch, _noise: &mut SeededRng) -> (Self, Vec<f32>) {
        let device = batch.images.device();
        let targets = labels(&batch.digits, &device);
        let logits = self.model.forward(batch.images);
        let loss = CrossEntropyLossConfig::new().init(&device).forward(logits.clone(), targets);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model, grads);

        let predicted = logits.into_data().try_to_vec::<f32>().map(|v| argmax_rows(&v, NUM_CLASSES)).unwrap_or_default();
        let correct = predicted.iter().zip(&batch.digits).filter(|(p, d)| **p == **d as usize).count();
        let accuracy = correct as f32 / batch.digits.len().max(1) as f32;
        (self, vec![loss.into_scalar(), accuracy])
    }

    fn evaluate(&self, test: &Mnist, device: &Device) -> Result<Vec<(String, f64)>> {
        let predictions = predict(&self.model.valid().to_device(device), test, device)?;
        Ok(vec![("test_accuracy".to_string(), accuracy(&predictions, &test.labels))])
    }

    fn samples(&self, test: &Mnist, device: &Device) -> Result<GrayImage> {
        let predictions = predict(&self.model.valid().to_device(device), test, device)?;
        let mut values = Vec::new();
        let wrong = predictions.iter().zip(&test.labels).enumerate().filter(|(_, (p, l))| **p != usize::from(**l));
        for (index, _) in wrong.take(MAX_SHOWN_ERRORS) {
            values.extend(test.image(index).iter().map(|&p| f32::from(p) / 255.0));
        }
        if values.is_empty() {
            values = vec![0.0; IMAGE_PIXELS];
        }
        Ok(tile(&values, PixelRange::Unit, GRID_COLUMNS, 2))
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        single_files(&self.model, &self.optimizer)
    }

    fn export(&self, storage: StorageType) -> Result<(String, Vec<u8>)> {
        let bytes = export_classifier(&self.config.model, &self.model, storage).context("export failed")?;
        Ok(("classifier.bin".to_string(), bytes))
    }

    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

/// Returns the predicted digit of every image of `test`.
pub fn predict(model: &Classifier, test: &Mnist, device: &Device) -> Result<Vec<usize>> {
    let mut predictions = Vec::with_capacity(test.len());
    for indices in eval_batches(test.len()) {
        let images = images_tensor(test, &indices, PixelRange::Unit, device);
        let logits = model
            .forward(images)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to read the classifier's output")?;
        predictions.extend(argmax_rows(&logits, NUM_CLASSES));
    }
    Ok(predictions)
}

/// Share of `predictions` equal to `labels`, in `[0, 1]`.
pub fn accuracy(predictions: &[usize], labels: &[u8]) -> f64 {
    let correct = predictions.iter().zip(labels).filter(|(p, l)| **p == usize::from(**l)).count();
    correct as f64 / predictions.len().max(1) as f64
}

fn labels(digits: &[u32], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = digits.iter().map(|&d| i64::from(d)).collect();
    Tensor::from_data(TensorData::new(values, [digits.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn short_training_beats_chance_on_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mnist");
        let train = Mnist::load(&dir, shared::mnist::Split::Train).unwrap();
        let test = Mnist::load(&dir, shared::mnist::Split::Test).unwrap();
        let device = Device::flex();
        let training = device.clone().autodiff();
        training.seed(5);
        let config = ClassifierTrainingConfig::new(ClassifierConfig::new());
        let mut run = ClassifierRun {
            model: config.model.init(&training),
            optimizer: AdamConfig::new().init(),
            config,
        };

        let mut noise = SeededRng::new(0);
        for epoch in 0..4u32 {
            for batch in crate::data::batches(&crate::data::epoch_order(train.len(), 5, epoch), 64) {
                let images = images_tensor(&train, batch, PixelRange::Unit, &training);
                let digits = batch.iter().map(|&i| u32::from(train.labels[i as usize])).collect();
                (run, _) = run.step(TrainBatch { images, digits }, &mut noise);
            }
        }
        let predictions = predict(&run.model.valid(), &test, &device).unwrap();

        let accuracy = accuracy(&predictions, &test.labels);
        // Chance is 0.1; 4 epochs of 512 digits reached 0.69 when this test was written.
        assert!(accuracy > 0.5, "accuracy {accuracy} after 4 epochs of 512 digits");
    }
}
