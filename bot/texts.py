"""Everything the bot says, in Russian (the default) and English."""

from ml.labels import CLASSES, DISPLAY_NAMES

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
# The version of the consent text (`consent.ask`): raise it when what people agree to changes,
# and everyone is asked again on their next /contribute. Version 1 did not mention /privacy.
CONSENT_VERSION = 2

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "start": (
            "Привет! Я распознаю эмоции на лицах: негативную, радость, удивление и нейтральную.\n"
            "Пришлите фото — я скажу, какие эмоции вижу. Можно и помочь мне учиться: "
            "отправить свои фото с подписанной эмоцией.\n"
            "Что я храню о вас и как это удалить — /privacy.\n\n{commands}"
        ),
        "help": "Что я умею:\n{commands}\n\nФото без команды — тоже распознаю.",
        "cmd.start": "начало и описание",
        "cmd.help": "справка",
        "cmd.predict": "распознать эмоции на фото",
        "cmd.contribute": "прислать фото для обучения",
        "cmd.mine": "мои присланные фото",
        "cmd.language": "язык / language",
        "cmd.cancel": "выйти из диалога",
        "cmd.privacy": "что я храню и как это удалить",
        "cmd.forget": "удалить всё, что я храню о вас",
        "cmd.stats": "статистика датасета и очереди",
        "cmd.export": "выгрузить датасет",
        "cmd.retrain": "запустить переобучение",
        "cmd.models": "список моделей",
        "cmd.promote": "сделать модель активной: /promote <версия>",
        "cancelled": "Хорошо, вышли из диалога. Что дальше? /help",
        "nothing_to_cancel": "Отменять нечего: сейчас нет активного диалога.",
        "unknown_command": "Не знаю такой команды. Список команд: /help",
        "outside_dialog": "Пришлите фото, чтобы распознать эмоции, или посмотрите /help.",
        "language.choose": "Выберите язык / Choose the language:",
        "language.set": "Готово: говорим по-русски.",
        "throttled": "Слишком много сообщений подряд — немного подождите, пожалуйста.",
        "error": "Простите, что-то пошло не так. Попробуйте ещё раз чуть позже.",
        "consent.ask": (
            "Прежде чем начать: присланные фото будут храниться и использоваться для обучения "
            "модели; их видят администраторы бота. Удалить их можно в любой момент: по одному — "
            "/mine, всё сразу — /forget. Модели, обученные раньше, сохранят то, чему научились. "
            "Подробнее — /privacy. Согласны?"
        ),
        "consent.changed": "Текст согласия изменился — прочитайте, пожалуйста, ещё раз.",
        "consent.yes": "Согласен(на)",
        "consent.no": "Нет",
        "consent.refused": "Хорошо, ничего не сохраняю. Передумаете — /contribute.",
        "contribute.choose": "Какая эмоция на фото, которые вы пришлёте? Выберите класс:",
        "contribute.use_buttons": "Выберите вариант кнопкой выше или /cancel, чтобы выйти.",
        "contribute.send": (
            "Класс: {label}. Присылайте фото (можно альбомом или файлами JPEG/PNG/WebP), "
            "на каждом — ровно одно лицо. Когда закончите, нажмите «Готово»."
        ),
        "contribute.accepted": "Фото принято ({count} в этой подборке). Ещё фото или «Готово».",
        "contribute.conflicting_copy": "Копия этого фото уже есть в датасете с другим классом. "
        "Сохраню его, но ни это фото, ни копию не буду использовать для обучения.",
        "contribute.done": "Готово",
        "contribute.nothing": "Пока нет ни одного принятого фото. Пришлите фото или /cancel.",
        "contribute.summary": "{count} фото с классом «{label}». Сохранить?",
        "contribute.save": "Сохранить",
        "contribute.discard": "Отменить",
        "contribute.saved": "Сохранено фото: {saved}. Спасибо! Ещё — /contribute, свои — /mine.",
        "contribute.saved_some_known": "Уже были в датасете: {known}.",
        "contribute.discarded": "Подборка отменена, ничего не сохранено.",
        "contribute.confirm_first": "Нажмите «Сохранить» или «Отменить» (или /cancel).",
        "contribute.fetch_failed": "Не удалось заново загрузить {failed} фото из Telegram.",
        "reject.not_photo": "Это не фото. Пришлите фотографию или файл JPEG, PNG или WebP.",
        "reject.type": "Файл «{name}» не похож на картинку: нужен JPEG, PNG или WebP.",
        "reject.empty": "Файл пустой (0 байт). Пришлите другое фото.",
        "reject.too_big": "Файл слишком большой: {size} МБ, можно до {limit} МБ.",
        "reject.broken": "Не получается прочитать изображение: файл повреждён или это не картинка.",
        "reject.too_many_pixels": "Изображение слишком большое: {width}×{height} пикселей.",
        "reject.far_too_many_pixels": "Изображение слишком большое: больше {limit} млн пикселей.",
        "reject.unusable": (
            "Изображение {width}×{height} пикселей слишком маленькое или слишком вытянутое, "
            "чтобы на нём поместилось лицо."
        ),
        "reject.no_face": "Не нашёл на фото лица. Нужно фото, где лицо хорошо видно.",
        "reject.small_face": "Лицо слишком маленькое: {size} пикс., нужно не меньше {least}. "
        "Пришлите фото покрупнее.",
        "reject.rotated": "Фото, похоже, повёрнуто на {degrees}°: пришлите его так, чтобы лицо "
        "было прямо.",
        "reject.tilted": "Голова наклонена на {degrees}°: нужно фото, где голова прямо.",
        "reject.many_faces": "На фото {faces} лица(лиц), а нужно ровно одно. Обрежьте фото.",
        "reject.known": "Это фото уже есть в датасете — второй раз не добавляю.",
        "reject.repeat": "Это фото уже есть в этой подборке.",
        "reject.repeat_copy": "Копия этого фото (пересжатая, уменьшенная или чуть изменённая) "
        "уже есть в этой подборке.",
        "reject.known_copy": "Копия этого фото (пересжатая, уменьшенная или чуть изменённая) уже "
        "есть в датасете с тем же классом — второй раз не добавляю.",
        "reject.download": "Не получилось скачать файл из Telegram. Попробуйте ещё раз.",
        "predict.ask": "Пришлите фото — распознаю эмоции на всех лицах.",
        "predict.queued": "Фото получено, распознаю… Ответ придёт следующим сообщением.",
        "predict.skipped_one": "Это фото не принято: у вас уже {limit} фото ждут ответа. "
        "Пришлите его ещё раз, когда придут ответы.",
        "predict.skipped_many": "Не принято фото: {count} — это и {more} следующих за ним. У вас "
        "уже {limit} фото ждут ответа; пришлите их ещё раз, когда придут ответы.",
        "mine.empty": "Вы пока не присылали фото. Начать — /contribute.",
        "mine.header": "Ваши фото: {total}\n{counts}\n\nСтраница {page} из {pages}:",
        "mine.item": "#{id} · {label} · {date}",
        "mine.delete_all": "Удалить все",
        "mine.delete_all_ask": "Удалить все ваши фото ({total})? Это необратимо.",
        "mine.yes": "Да, удалить",
        "mine.no": "Нет",
        "mine.deleted": "Удалено фото: {count}.",
        "mine.gone": "Этого фото уже нет.",
        "privacy.text": (
            "Что я храню о вас\n"
            "• Ваш Telegram id, имя, имя пользователя и язык — чтобы отвечать вам.\n"
            "• Фото для распознавания: {retention} Результат (лица, рамки, вероятности, "
            "версия модели) остаётся, уже без фото.\n"
            "• Фото, присланные через /contribute, с эмоцией и рамкой лица — пока вы их не "
            "удалите. На них учится модель.\n"
            "• Ваше согласие: {consent}\n"
            "• Незаконченный диалог (например, ещё не сохранённая подборка фото).\n\n"
            "Кто видит: администраторы бота. В выгрузках датасета авторы фото обозначены "
            "псевдонимом, а не Telegram id, если администратор явно не попросил id.\n\n"
            "Как удалить: свои фото по одному — /mine; всё сразу — /forget или кнопка ниже. "
            "Модели, обученные до удаления, сохраняют то, чему научились; следующие обучения "
            "удалённые фото не используют."
        ),
        "privacy.retention.now": "удаляются сразу после ответа.",
        "privacy.retention.hours": "хранятся ещё {hours} ч после ответа (для отладки), затем "
        "удаляются.",
        "privacy.consent.given": "дано {date} (версия текста {version}).",
        "privacy.consent.none": "не дано.",
        "privacy.withdraw": "Отозвать согласие",
        "privacy.forget": "Удалить все мои данные",
        "privacy.withdrawn": "Согласие отозвано. Новые фото для обучения я не приму, пока вы "
        "не согласитесь снова (/contribute).",
        "privacy.withdrawn_ask": "В датасете остаются ваши фото: {count}. Удалить их?",
        "privacy.erase_yes": "Да, удалить фото",
        "privacy.erase_no": "Нет, оставить",
        "privacy.erased": "Удалено ваших фото: {count}.",
        "privacy.kept": "Хорошо, фото остаются в датасете. Удалить их можно в любой момент: /mine.",
        "privacy.no_consent": "Согласия и так нет: отзывать нечего.",
        "forget.ask": (
            "Удалить всё, что я храню о вас: присланные для обучения фото, запросы на "
            "распознавание с их фото и результатами, незаконченные диалоги, ваше имя, язык и "
            "согласие? Это необратимо."
        ),
        "forget.yes": "Да, удалить всё",
        "forget.no": "Нет",
        "forget.done": (
            "Удалено: фото для обучения — {contributions}, запросов на распознавание — "
            "{predictions}, незаконченных диалогов — {dialogs}; ваше имя, язык и согласие "
            "стёрты. Если напишете мне снова, я буду знать о вас только то, что нужно для ответа."
        ),
        "forget.kept": "Хорошо, ничего не удалено.",
        "admin.stats": (
            "Датасет (активные изображения по источнику и классу):\n{table}\n"
            "Удалено: {deleted}\nОчередь распознавания: {depth}\nАктивная модель: {model}"
        ),
        "admin.no_model": "нет",
        "admin.export.started": "Собираю архив датасета…",
        "admin.export.progress": "Собираю архив датасета: {done} из {total}…",
        "admin.export.done": "Архив готов: {images} изображений, {size} МБ. {ids}",
        "admin.export.pseudonymous": "Авторы фото в manifest.csv — псевдонимы (contributor_key); "
        "Telegram id — /export ids=raw.",
        "admin.export.raw": "Авторы фото в manifest.csv — Telegram id (contributor_id).",
        "admin.export.usage": "Не понял «{args}». Например: /export или /export ids=raw",
        "admin.export.url": "Архив больше {limit} МБ, скачать можно по ссылке (1 час):\n{url}",
        "admin.export.no_url": "Архив больше {limit} МБ, а хранилище не даёт ссылок: {key}",
        "admin.retrain.queued": "Обучение №{run} ({arch}, {epochs} эп.) поставлено в очередь. "
        "Прогресс будет здесь.",
        "admin.retrain.promote": "Новая модель станет активной, если она лучше текущей.",
        "admin.retrain.keep": "Новая модель не станет активной сама: /promote.",
        "admin.retrain.usage": "{error}\nНапример: /retrain epochs=30 arch=emonet promote=no",
        "admin.retrain.busy": "Обучение уже идёт (№{run}, {status}). Дождитесь его окончания.",
        "admin.models.empty": "Моделей в реестре пока нет.",
        "admin.models.item": "v{version} · {arch} · сбаланс. точн. {balanced} · {created}{active}",
        "admin.models.accuracy": " · точн. {accuracy}",
        "admin.models.active": " · АКТИВНА",
        "admin.stats.empty": "Датасет пуст.",
        "admin.stats.near_conflicts": "Почти одинаковые фото с разными классами (не идут в "
        "обучение): {count}.",
        "admin.stats.no_fer": "FER2013 не загружен: в датасете только присланные фото.",
        "admin.retrain.bad.not_understood": "Не понял «{word}»: пишите ключ=значение, ключи: "
        "{keys}.",
        "admin.retrain.bad.yes_no": "{name} — это да или нет (yes/no), а не «{value}».",
        "admin.retrain.bad.whole_number": "{name} — целое число от {low} до {high}, "
        "а не «{value}».",
        "admin.retrain.bad.out_of_range": "{name} должно быть от {low} до {high}, а не {value}.",
        "admin.retrain.bad.unknown_arch": "Нет архитектуры «{value}». Есть: {archs}.",
        "admin.retrain.bad.unknown_keys": "Неизвестные параметры: {keys}.",
        "admin.retrain.refused": "Обучение не запущено.",
        "admin.promote.usage": "Укажите номер версии из /models, например: /promote 3",
        "admin.promote.unknown": "Модели v{version} нет. Список: /models",
        "admin.promote.done": "Теперь активна модель v{version}.",
        "admin.promote.already": "Модель v{version} уже активна.",
        "admin.promote.numbers": "{basis}: v{new} — {new_value}, активная v{old} — {old_value}.",
        "admin.promote.basis.test_4": "Сбаланс. точность на FER2013 test-4",
        "admin.promote.basis.run": "Сбаланс. точность на тестовой выборке из базы (при обучении)",
        "admin.promote.basis.none": "Общей тестовой выборки нет; сбаланс. точность",
        "admin.promote.worse": "v{new} хуже активной модели v{old}. Всё равно сделать активной?",
        "admin.promote.incomparable": "v{new} и v{old} не измерены на одной тестовой выборке: "
        "сравнить нельзя. Всё равно сделать v{new} активной?",
        "admin.promote.yes": "Да, сделать v{version} активной",
        "admin.promote.no": "Нет, оставить v{version}",
        "admin.promote.kept": "Оставил активной v{version}.",
        "admin.promote.changed": "Активная модель сменилась, пока вы думали. Повторите /promote "
        "{version}.",
    },
    "en": {
        "start": (
            "Hi! I recognise emotions on faces: negative, happy, surprised and neutral.\n"
            "Send me a photo and I'll tell you what I see. You can also help me learn by "
            "sending your own photos labelled with an emotion.\n"
            "What I keep about you and how to erase it: /privacy.\n\n{commands}"
        ),
        "help": "What I can do:\n{commands}\n\nA photo without a command works too.",
        "cmd.start": "start and about",
        "cmd.help": "help",
        "cmd.predict": "recognise emotions in a photo",
        "cmd.contribute": "send photos for training",
        "cmd.mine": "photos you sent",
        "cmd.language": "language / язык",
        "cmd.cancel": "leave the dialog",
        "cmd.privacy": "what I keep and how to erase it",
        "cmd.forget": "erase everything I keep about you",
        "cmd.stats": "dataset and queue statistics",
        "cmd.export": "export the dataset",
        "cmd.retrain": "start retraining",
        "cmd.models": "list models",
        "cmd.promote": "activate a model: /promote <version>",
        "cancelled": "OK, dialog closed. What next? /help",
        "nothing_to_cancel": "Nothing to cancel: no dialog is open.",
        "unknown_command": "I don't know that command. The list: /help",
        "outside_dialog": "Send a photo to recognise emotions, or see /help.",
        "language.choose": "Выберите язык / Choose the language:",
        "language.set": "Done: speaking English now.",
        "throttled": "Too many messages in a row: please wait a moment.",
        "error": "Sorry, something went wrong. Please try again a bit later.",
        "consent.ask": (
            "Before we start: the photos you send will be stored and used to train the model; "
            "the bot's admins can see them. You can erase them any time: one by one with /mine, "
            "everything at once with /forget. Models trained before keep what they learned. "
            "More: /privacy. Do you agree?"
        ),
        "consent.changed": "The consent text has changed: please read it again.",
        "consent.yes": "I agree",
        "consent.no": "No",
        "consent.refused": "OK, nothing is stored. Changed your mind? /contribute.",
        "contribute.choose": "Which emotion is on the photos you'll send? Choose a class:",
        "contribute.use_buttons": "Please choose with the buttons above, or /cancel to leave.",
        "contribute.send": (
            "Class: {label}. Send photos (an album or JPEG/PNG/WebP files work too), exactly "
            "one face on each. Press “Done” when finished."
        ),
        "contribute.accepted": "Photo accepted ({count} in this batch). More photos or “Done”.",
        "contribute.conflicting_copy": "A copy of this photo is in the dataset with another "
        "class. I will keep it, but neither it nor the copy will be used for training.",
        "contribute.done": "Done",
        "contribute.nothing": "No photo accepted yet. Send a photo or /cancel.",
        "contribute.summary": "{count} photo(s) labelled “{label}”. Save them?",
        "contribute.save": "Save",
        "contribute.discard": "Discard",
        "contribute.saved": "Photos saved: {saved}. Thank you! More: /contribute, yours: /mine.",
        "contribute.saved_some_known": "Already in the dataset: {known}.",
        "contribute.discarded": "Batch discarded, nothing was stored.",
        "contribute.confirm_first": "Press “Save” or “Discard” (or /cancel).",
        "contribute.fetch_failed": "Could not download {failed} photo(s) from Telegram again.",
        "reject.not_photo": "That's not a photo. Send a photo or a JPEG, PNG or WebP file.",
        "reject.type": "“{name}” does not look like a picture: JPEG, PNG or WebP please.",
        "reject.empty": "The file is empty (0 bytes). Please send another photo.",
        "reject.too_big": "The file is too big: {size} MB, the limit is {limit} MB.",
        "reject.broken": "I can't read this image: the file is damaged or not a picture.",
        "reject.too_many_pixels": "The image is too large: {width}×{height} pixels.",
        "reject.far_too_many_pixels": "The image is too large: over {limit} million pixels.",
        "reject.unusable": (
            "A {width}×{height} pixel image is too small or too narrow to hold a face."
        ),
        "reject.no_face": "I found no face in this photo. Please send one where a face is clear.",
        "reject.small_face": "The face is too small: {size} px across, at least {least} needed. "
        "Please send a closer photo.",
        "reject.rotated": "The photo seems turned by {degrees}°: please send it with the face "
        "upright.",
        "reject.tilted": "The head is tilted by {degrees}°: please send a photo with the head "
        "upright.",
        "reject.many_faces": "I see {faces} faces; exactly one is needed. Please crop the photo.",
        "reject.known": "This photo is already in the dataset: not adding it twice.",
        "reject.repeat": "This photo is already in this batch.",
        "reject.repeat_copy": "A copy of this photo (re-encoded, resized or slightly edited) is "
        "already in this batch.",
        "reject.known_copy": "A copy of this photo (re-encoded, resized or slightly edited) is "
        "already in the dataset with the same class: not adding it twice.",
        "reject.download": "Could not download the file from Telegram. Please try again.",
        "predict.ask": "Send a photo and I'll recognise the emotion of every face.",
        "predict.queued": "Got it, working on it… The answer comes in the next message.",
        "predict.skipped_one": "This photo was not queued: you have {limit} photos waiting for "
        "answers already. Please send it again once they arrive.",
        "predict.skipped_many": "Photos not queued: {count}, this one and the {more} sent after "
        "it. You have {limit} photos waiting for answers already; please send them again once "
        "they arrive.",
        "mine.empty": "You haven't sent any photos yet. Start with /contribute.",
        "mine.header": "Your photos: {total}\n{counts}\n\nPage {page} of {pages}:",
        "mine.item": "#{id} · {label} · {date}",
        "mine.delete_all": "Delete all",
        "mine.delete_all_ask": "Delete all your photos ({total})? This cannot be undone.",
        "mine.yes": "Yes, delete",
        "mine.no": "No",
        "mine.deleted": "Photos deleted: {count}.",
        "mine.gone": "That photo is gone already.",
        "privacy.text": (
            "What I keep about you\n"
            "• Your Telegram id, name, username and language: to answer you.\n"
            "• Photos sent for recognition: {retention} The result (faces, boxes, "
            "probabilities, model version) stays, without the photo.\n"
            "• Photos sent with /contribute, with their emotion and face box: until you delete "
            "them. The model learns from them.\n"
            "• Your consent: {consent}\n"
            "• An unfinished dialog (a batch of photos not saved yet, for example).\n\n"
            "Who sees it: the bot's admins. Dataset exports name contributors by a pseudonym, "
            "not by Telegram id, unless an admin explicitly asks for ids.\n\n"
            "How to erase it: your photos one by one with /mine; everything at once with "
            "/forget or the button below. Models trained before an erasure keep what they "
            "learned; later trainings do not use the erased photos."
        ),
        "privacy.retention.now": "deleted as soon as the answer is sent.",
        "privacy.retention.hours": "kept {hours} h after the answer (for debugging), then deleted.",
        "privacy.consent.given": "given on {date} (consent text version {version}).",
        "privacy.consent.none": "not given.",
        "privacy.withdraw": "Withdraw consent",
        "privacy.forget": "Erase all my data",
        "privacy.withdrawn": "Consent withdrawn. I won't take new photos for training until you "
        "agree again (/contribute).",
        "privacy.withdrawn_ask": "Your photos still in the dataset: {count}. Erase them?",
        "privacy.erase_yes": "Yes, erase them",
        "privacy.erase_no": "No, keep them",
        "privacy.erased": "Your photos erased: {count}.",
        "privacy.kept": "OK, the photos stay in the dataset. You can erase them any time: /mine.",
        "privacy.no_consent": "There is no consent to withdraw.",
        "forget.ask": (
            "Erase everything I keep about you: photos sent for training, recognition requests "
            "with their photos and results, unfinished dialogs, your name, language and "
            "consent? This cannot be undone."
        ),
        "forget.yes": "Yes, erase everything",
        "forget.no": "No",
        "forget.done": (
            "Erased: photos for training: {contributions}, recognition requests: "
            "{predictions}, unfinished dialogs: {dialogs}; your name, language and consent are "
            "gone. If you write to me again, I'll only know what answering you needs."
        ),
        "forget.kept": "OK, nothing was erased.",
        "admin.stats": (
            "Dataset (active images per source and class):\n{table}\n"
            "Deleted: {deleted}\nPrediction queue: {depth}\nActive model: {model}"
        ),
        "admin.no_model": "none",
        "admin.export.started": "Building the dataset archive…",
        "admin.export.progress": "Building the dataset archive: {done} of {total}…",
        "admin.export.done": "Archive ready: {images} images, {size} MB. {ids}",
        "admin.export.pseudonymous": "Contributors in manifest.csv are pseudonyms "
        "(contributor_key); Telegram ids: /export ids=raw.",
        "admin.export.raw": "Contributors in manifest.csv are Telegram ids (contributor_id).",
        "admin.export.usage": "I did not understand “{args}”. For example: /export or "
        "/export ids=raw",
        "admin.export.url": "The archive is over {limit} MB; download it here (1 hour):\n{url}",
        "admin.export.no_url": "The archive is over {limit} MB and the store gives no URLs: {key}",
        "admin.retrain.queued": "Training run #{run} ({arch}, {epochs} epochs) queued. Progress "
        "will show here.",
        "admin.retrain.promote": "The new model becomes active if it beats the current one.",
        "admin.retrain.keep": "The new model will not become active by itself: /promote.",
        "admin.retrain.usage": "{error}\nFor example: /retrain epochs=30 arch=emonet promote=no",
        "admin.retrain.busy": "A training run is already on (#{run}, {status}). Please wait.",
        "admin.models.empty": "No models in the registry yet.",
        "admin.models.item": "v{version} · {arch} · bal.acc {balanced} · {created}{active}",
        "admin.models.accuracy": " · acc {accuracy}",
        "admin.models.active": " · ACTIVE",
        "admin.stats.empty": "The dataset is empty.",
        "admin.stats.near_conflicts": "Near-identical photos with different classes (left out "
        "of training): {count}.",
        "admin.stats.no_fer": "FER2013 is not loaded: the dataset holds contributed photos only.",
        "admin.retrain.bad.not_understood": "“{word}” is not understood: write key=value, with "
        "a key of {keys}.",
        "admin.retrain.bad.yes_no": "{name} is yes or no, not “{value}”.",
        "admin.retrain.bad.whole_number": "{name} is a whole number from {low} to {high}, not "
        "“{value}”.",
        "admin.retrain.bad.out_of_range": "{name} must be {low} to {high}, not {value}.",
        "admin.retrain.bad.unknown_arch": "There is no arch “{value}”; one of {archs}.",
        "admin.retrain.bad.unknown_keys": "Unknown parameters: {keys}.",
        "admin.retrain.refused": "Training was not started.",
        "admin.promote.usage": "Give a version number from /models, for example: /promote 3",
        "admin.promote.unknown": "There is no model v{version}. The list: /models",
        "admin.promote.done": "Model v{version} is active now.",
        "admin.promote.already": "Model v{version} is the active model already.",
        "admin.promote.numbers": "{basis}: v{new} {new_value}, the active v{old} {old_value}.",
        "admin.promote.basis.test_4": "Balanced accuracy on FER2013 test-4",
        "admin.promote.basis.run": "Balanced accuracy on the database's test split (when trained)",
        "admin.promote.basis.none": "No common test split; balanced accuracy",
        "admin.promote.worse": "v{new} is worse than the active model v{old}. Make it active "
        "anyway?",
        "admin.promote.incomparable": "v{new} and v{old} were not measured on the same test "
        "split: they cannot be compared. Make v{new} active anyway?",
        "admin.promote.yes": "Yes, make v{version} active",
        "admin.promote.no": "No, keep v{version}",
        "admin.promote.kept": "Kept v{version} active.",
        "admin.promote.changed": "The active model changed meanwhile. Send /promote {version} "
        "again.",
    },
}

USER_COMMANDS = (
    "start", "help", "predict", "contribute", "mine", "language", "cancel", "privacy", "forget",
)  # fmt: skip
ADMIN_COMMANDS = ("stats", "export", "retrain", "models", "promote")


def t(lang: str, key: str, **values: object) -> str:
    """The text `key` in `lang` (Russian when the language is not supported)."""
    texts = TEXTS.get(lang, TEXTS[DEFAULT_LANGUAGE])
    return texts[key].format(**values) if values else texts[key]


def label_name(lang: str, label: str) -> str:
    return DISPLAY_NAMES.get(lang, DISPLAY_NAMES[DEFAULT_LANGUAGE])[label]


def command_list(lang: str, admin: bool = False) -> str:
    commands = USER_COMMANDS + (ADMIN_COMMANDS if admin else ())
    return "\n".join(f"/{c} — {t(lang, f'cmd.{c}')}" for c in commands)


def class_counts(lang: str, counts: dict[str, int]) -> str:
    return "\n".join(f"{label_name(lang, c)}: {counts.get(c, 0)}" for c in CLASSES)
